//! Builds the C++ shim against the headers of the Node that will load the
//! addon, with that Node's V8 configuration, and records its ABI.
//!
//! Which Node: `MEMGUARD_NODE` (path to a `node` binary), else the one npm is
//! running (`npm_node_execpath`), else `node` on PATH. Which headers:
//! `MEMGUARD_NODE_HEADERS`, else `<realpath(node)>/../../include/node`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    napi_build::setup();
    for var in ["MEMGUARD_NODE", "MEMGUARD_NODE_HEADERS", "npm_node_execpath"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=src/v8/shim.cc");

    let node = std::env::var("MEMGUARD_NODE")
        .or_else(|_| std::env::var("npm_node_execpath"))
        .unwrap_or_else(|_| "node".into());
    let facts = node_facts(&node);
    let exec_path = PathBuf::from(facts["execPath"].as_str().expect("execPath"));
    let headers = match std::env::var("MEMGUARD_NODE_HEADERS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let real = std::fs::canonicalize(&exec_path).unwrap_or(exec_path.clone());
            real.parent().and_then(Path::parent).map(|p| p.join("include/node")).unwrap_or_default()
        }
    };
    if !headers.join("v8.h").is_file() {
        fail(&format!(
            "no V8 headers at {} (for {}); set MEMGUARD_NODE_HEADERS to the include/node directory of that Node",
            headers.display(),
            exec_path.display()
        ));
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("src/v8/shim.cc")
        .include(&headers)
        .flag("-std=c++20")
        .flag("-fno-exceptions")
        .flag("-fno-rtti")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-unused-parameter")
        .define("NODE_MODULE_VERSION_BUILT", facts["abi"].as_str().unwrap());
    for define in v8_defines(&facts["variables"]) {
        build.define(define, None);
    }
    build.compile("memguard_shim");

    println!("cargo:rustc-env=MEMGUARD_BUILT_ABI={}", facts["abi"].as_str().unwrap());
    println!("cargo:rustc-env=MEMGUARD_BUILT_NODE={}", facts["version"].as_str().unwrap());
}

/// Asks the target Node for its version, ABI and build configuration.
fn node_facts(node: &str) -> serde_json::Value {
    let script = "console.log(JSON.stringify({execPath: process.execPath, version: process.version, \
                  abi: process.versions.modules, variables: process.config.variables}))";
    let out = Command::new(node).args(["-e", script]).output();
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).expect("node printed JSON"),
        Ok(out) => fail(&format!("`{node} -e …` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => fail(&format!("cannot run `{node}` ({e}); set MEMGUARD_NODE to the node binary to build for")),
    }
}

/// The defines Node's common.gypi derives from its V8 build flags. The V8
/// headers change object layouts on these: a mismatch compiles and then
/// corrupts memory, so they must mirror the running binary exactly.
fn v8_defines(vars: &serde_json::Value) -> Vec<&'static str> {
    let on = |name: &str| vars.get(name).and_then(|v| v.as_i64()).unwrap_or(0) == 1;
    let mut defines = Vec::new();
    if on("v8_enable_v8_checks") {
        defines.push("V8_ENABLE_CHECKS");
    }
    if on("v8_enable_pointer_compression") {
        defines.push("V8_COMPRESS_POINTERS");
        defines.push(if on("v8_enable_pointer_compression_shared_cage") {
            "V8_COMPRESS_POINTERS_IN_SHARED_CAGE"
        } else {
            "V8_COMPRESS_POINTERS_IN_ISOLATE_CAGE"
        });
    }
    if on("v8_enable_pointer_compression") || on("v8_enable_31bit_smis_on_64bit_arch") {
        defines.push("V8_31BIT_SMIS_ON_64BIT_ARCH");
    }
    for (flag, define) in [
        ("v8_enable_zone_compression", "V8_COMPRESS_ZONES"),
        ("v8_enable_sandbox", "V8_ENABLE_SANDBOX"),
        ("v8_enable_external_code_space", "V8_EXTERNAL_CODE_SPACE"),
        ("v8_enable_map_packing", "V8_MAP_PACKING"),
        ("v8_enable_conservative_stack_scanning", "V8_ENABLE_CONSERVATIVE_STACK_SCANNING"),
        ("v8_enable_direct_local", "V8_ENABLE_DIRECT_LOCAL"),
        ("tsan", "V8_IS_TSAN"),
    ] {
        if on(flag) {
            defines.push(define);
        }
    }
    defines
}

fn fail(message: &str) -> ! {
    eprintln!("memguard build: {message}");
    std::process::exit(1);
}
