import NIOConcurrencyHelpers

/// The flow controls of the connected upstreams, and which sinks currently want which of them paused.
///
/// A sink under `on_full = "block"` calls `pause(by:)` when its buffer fills and `resume(by:)` when it has
/// drained; the registry forwards that to every upstream the sink takes, including upstreams that register
/// (connect) while the sink is still full. Calls into the upstreams are made under the registry's lock so a
/// pause and the following resume can never reach an upstream in the wrong order; `UpstreamFlowControl`
/// implementations must therefore not call back into the sink layer.
final class FlowControlRegistry: Sendable {
    private struct State {
        var controls: [String: any UpstreamFlowControl] = [:]
        /// Sinks currently pausing, with the upstream names they take (nil: all).
        var pausers: [ObjectIdentifier: Set<String>?] = [:]
    }

    private let state = NIOLockedValueBox(State())

    func register(upstream: String, flowControl: any UpstreamFlowControl) {
        state.withLockedValue { state in
            state.controls[upstream] = flowControl
            for (token, names) in state.pausers where names?.contains(upstream) ?? true {
                flowControl.pause(by: token)
            }
        }
    }

    func unregister(upstream: String) {
        state.withLockedValue { state in
            if let control = state.controls.removeValue(forKey: upstream) {
                for (token, names) in state.pausers where names?.contains(upstream) ?? true {
                    control.resume(by: token)
                }
            }
        }
    }

    /// `upstreams` nil means every upstream.
    func pause(by token: ObjectIdentifier, upstreams: Set<String>?) {
        state.withLockedValue { state in
            guard state.pausers[token] == nil else { return }
            state.pausers[token] = .some(upstreams)
            for (name, control) in state.controls where upstreams?.contains(name) ?? true {
                control.pause(by: token)
            }
        }
    }

    func resume(by token: ObjectIdentifier) {
        state.withLockedValue { state in
            guard let entry = state.pausers.removeValue(forKey: token) else { return }
            for (name, control) in state.controls where entry?.contains(name) ?? true {
                control.resume(by: token)
            }
        }
    }

    func isPausing(_ token: ObjectIdentifier) -> Bool {
        state.withLockedValue { $0.pausers[token] != nil }
    }

    var registeredUpstreams: [String] {
        state.withLockedValue { Array($0.controls.keys).sorted() }
    }
}
