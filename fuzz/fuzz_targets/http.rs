//! HTTP/1.x request head (Host, path, update paths) on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let warden::packet::http::Request::Complete(r) = warden::packet::http::parse_request(data) {
        let _ = warden::packet::http::update_path(&r.path);
    }
});
