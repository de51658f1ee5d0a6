//! `hadrill-sample`: the sample services and the vehicle traffic generator (subcommands are
//! added as they land).

fn main() {
    eprintln!("hadrill-sample: no subcommand yet");
    std::process::exit(2);
}
