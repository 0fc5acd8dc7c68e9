/// The user event `SimulatorServer.release()` sends down every open connection's pipeline: connections whose
/// scenario has `hold=1` start sending when it arrives. Benchmarks use it to start the flood only after the
/// client and its subscribers are connected, so the measured time is the relay's and not the setup's.
struct SimulatorRelease: Sendable {}
