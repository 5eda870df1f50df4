use std::process::ExitCode;

fn main() -> ExitCode {
    bridgehead::cli::main()
}
