fn main() {
    std::process::exit(fwlog::app::main());
}
