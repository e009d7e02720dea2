//! Address parsing on arbitrary strings: never panics, and whatever parses prints back
//! to a string that parses to the same address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped_transports::Address;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    type Parse = fn(&str) -> Result<Address, spiped_transports::AddressError>;
    for parse in [Address::parse as Parse, Address::parse_bind] {
        match parse(s) {
            Ok(a) => assert_eq!(parse(&a.to_string()).as_ref(), Ok(&a), "{s:?}"),
            Err(e) => assert!(e.to_string().starts_with("invalid address")),
        }
    }
});
