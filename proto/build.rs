//! Compiles the wire contract with protox (pure Rust), so building fleetload needs no
//! system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=fleetload.proto");
    let descriptors = protox::compile(["fleetload.proto"], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
