//! The `upstart-helmrelease-operator` binary (SPEC §6).

fn main() {
    eprintln!("upstart-helmrelease-operator: the controller is not wired into a binary yet");
    std::process::exit(2);
}
