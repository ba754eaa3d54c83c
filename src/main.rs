//! The `strumlab` binary: parse arguments, run, print. All logic lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = strumlab::cli::Cli::parse();
    private_runtime_dir();
    match strumlab::cli::run(cli).map_err(anyhow::Error::from) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            // The library's messages already name their cause (an I/O error's text is part
            // of "cannot read PATH: ..."), so the chain is not printed again.
            eprintln!("error: {}", one_line(&e.to_string()));
            std::process::ExitCode::from(2)
        }
    }
}

/// An error message as one line of bounded length: a message quoting a huge tensor shape
/// or a corrupt file's bytes is cut, saying how much was left out.
fn one_line(msg: &str) -> String {
    const MAX: usize = 2000;
    let flat = msg.replace('\n', "; ");
    if flat.len() <= MAX {
        return flat;
    }
    let mut cut = MAX;
    while !flat.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ... ({} more bytes)", &flat[..cut], flat.len() - cut)
}

/// Vulkan and GL drivers print "error: XDG_RUNTIME_DIR is invalid or not set" on a machine
/// without a desktop session, which reads as our error: give them a private runtime folder
/// (mode 0700, under the temporary folder) when the variable is unset.
fn private_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join("strumlab-xdg-runtime");
    let made = std::fs::create_dir_all(&dir).and_then(|_| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
    });
    if made.is_ok() {
        // SAFETY: called at the start of main, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}
