//! Compiles the Grafana dashboard into the form the cos_agent library
//! expects (base64 of its xz-compressed text), once, at build time: the
//! hook binary carries the encoded text and needs no compressor.

use std::io::Write;

fn main() {
    let source = "src/cos/dashboard.json";
    println!("cargo:rerun-if-changed={source}");
    let json = std::fs::read(source).expect("reading src/cos/dashboard.json");
    // Only valid JSON is compiled in; the tests check what it says.
    serde_json::from_slice::<serde_json::Value>(&json).expect("src/cos/dashboard.json is JSON");
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 9);
    encoder
        .write_all(&json)
        .expect("xz-compressing the dashboard");
    let xz = encoder.finish().expect("xz-compressing the dashboard");
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &xz);
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let mut file = std::fs::File::create(out.join("dashboard.xz.b64"))
        .expect("creating the encoded dashboard");
    file.write_all(encoded.as_bytes())
        .expect("writing the encoded dashboard");
}
