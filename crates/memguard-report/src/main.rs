//! `memguard-report report <bundle-dir | snapshot> [options]` — reached as
//! `npx memguard report …` through `bin/memguard.js`.

fn main() {
    eprintln!("memguard report: not built yet");
    std::process::exit(2);
}
