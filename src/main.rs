fn main() {
    std::process::exit(fwlog::cli::main());
}
