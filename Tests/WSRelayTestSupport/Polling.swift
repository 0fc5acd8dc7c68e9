import Foundation

// Polling for states that have no event to wait on (a file appearing, a process disappearing, a counter
// reaching a value). The deadline is a safety net, never a speed assertion: a condition that holds returns
// at the next poll, and only a test that is failing anyway waits the whole timeout.

/// Blocks the calling thread, polling `condition` every 10 ms until it holds or `timeout` passes. For tests
/// that run off the cooperative pool (the integration suites' `.mayBlock` trait).
public func eventually(timeout: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Suspends, polling `condition` every 5 ms until it holds or `timeout` passes.
@discardableResult
public func waitUntil(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}

/// True while `pid` exists and is not a zombie (a daemonized or orphaned process is reaped by whoever
/// adopted it).
public func processIsAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}
