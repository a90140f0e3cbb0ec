//! Builds the C++ shim against the headers of the Node that will load the
//! addon, with that Node's V8 configuration, and records its ABI.
//!
//! Everything comes from the headers directory: the version and ABI from
//! `node_version.h`, the V8 build flags from `config.gypi` (the file
//! `process.config` is made from). No target `node` has to run, so a cross
//! build (arm64, musl) needs no emulator.
//!
//! Which headers: `MEMGUARD_NODE_HEADERS` (an `include/node` directory), else
//! `<realpath(node)>/../../include/node` of `MEMGUARD_NODE` (a `node` binary),
//! else of the Node npm is running (`npm_node_execpath`), else of `node` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    napi_build::setup();
    for var in ["MEMGUARD_NODE", "MEMGUARD_NODE_HEADERS", "npm_node_execpath"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=src/v8/shim.cc");

    let headers = headers_dir();
    for file in ["v8.h", "node_version.h", "config.gypi"] {
        if !headers.join(file).is_file() {
            fail(&format!(
                "no {file} in {}; set MEMGUARD_NODE_HEADERS to the include/node directory of the Node to build for",
                headers.display()
            ));
        }
        println!("cargo:rerun-if-changed={}", headers.join(file).display());
    }
    let version_h = read(&headers.join("node_version.h"));
    let abi = define(&version_h, "NODE_MODULE_VERSION")
        .unwrap_or_else(|| fail("node_version.h defines no NODE_MODULE_VERSION"));
    let version = ["NODE_MAJOR_VERSION", "NODE_MINOR_VERSION", "NODE_PATCH_VERSION"]
        .map(|name| define(&version_h, name).unwrap_or_else(|| fail(&format!("node_version.h defines no {name}"))))
        .join(".");
    let config = read(&headers.join("config.gypi"));

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
        .define("NODE_MODULE_VERSION_BUILT", abi.as_str());
    for define in v8_defines(|name| gypi_flag(&config, name)) {
        build.define(define, None);
    }
    build.compile("memguard_shim");

    println!("cargo:rustc-env=MEMGUARD_BUILT_ABI={abi}");
    println!("cargo:rustc-env=MEMGUARD_BUILT_NODE=v{version}");
}

/// The target Node's `include/node` directory.
fn headers_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MEMGUARD_NODE_HEADERS") {
        return PathBuf::from(dir);
    }
    let node = std::env::var("MEMGUARD_NODE")
        .or_else(|_| std::env::var("npm_node_execpath"))
        .unwrap_or_else(|_| "node".into());
    let exec_path = match Command::new(&node).args(["-p", "process.execPath"]).output() {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        Ok(out) => fail(&format!("`{node} -p process.execPath` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => fail(&format!(
            "cannot run `{node}` ({e}); set MEMGUARD_NODE to the node binary, or MEMGUARD_NODE_HEADERS to its include/node"
        )),
    };
    let real = std::fs::canonicalize(&exec_path).unwrap_or(exec_path);
    real.parent().and_then(Path::parent).map(|p| p.join("include/node")).unwrap_or_default()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())))
}

/// The number a `#define NAME <digits>` line gives (the first such line: in
/// node_version.h an embedder's override comes first only when set).
fn define(header: &str, name: &str) -> Option<String> {
    header.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("#define") && words.next() == Some(name))
            .then(|| words.next())
            .flatten()
            .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
    })
}

/// Whether config.gypi (a Python literal) sets `'name': 1` (or `'true'`).
fn gypi_flag(config: &str, name: &str) -> bool {
    let key = format!("'{name}':");
    config.find(&key).is_some_and(|at| {
        let value = config[at + key.len()..].trim_start();
        value.starts_with('1') || value.starts_with("'true'")
    })
}

/// The defines Node's common.gypi derives from its V8 build flags. The V8
/// headers change object layouts on these: a mismatch compiles and then
/// corrupts memory, so they must mirror the running binary exactly.
fn v8_defines(on: impl Fn(&str) -> bool) -> Vec<&'static str> {
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
