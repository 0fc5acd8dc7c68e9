import NIOConcurrencyHelpers

/// The flow controls of the running upstreams, by upstream id, and which sinks currently want which of them
/// paused.
///
/// A sink under `on_full = "block"` calls `pause(by:upstreams:)` with its `UpstreamSelection` when its buffer
/// fills and `resume(by:)` when it has drained; the registry forwards that to every upstream the sink takes,
/// including upstreams that register (connect) while the sink is still full. Upstreams register by name
/// (they know no ids); the name is turned into its `UpstreamDirectory` id once, so sinks speak ids only,
/// as they do for data. Calls into the upstreams are made under the registry's lock so a pause and the
/// following resume can never reach an upstream in the wrong order; `UpstreamFlowControl` implementations
/// must therefore not call back into the sink layer.
public final class FlowControlRegistry: UpstreamFlowControls, Sendable {
    private struct State {
        var controls: [UInt16: any UpstreamFlowControl] = [:]
        /// Sinks currently pausing, with the upstreams they take.
        var pausers: [ObjectIdentifier: UpstreamSelection] = [:]
    }

    private let directory: UpstreamDirectory
    private let state = NIOLockedValueBox(State())

    init(directory: UpstreamDirectory) {
        self.directory = directory
    }

    public func register(upstream: String, flowControl: any UpstreamFlowControl) {
        let id = directory.id(for: upstream).0
        state.withLockedValue { state in
            let previous = state.controls.updateValue(flowControl, forKey: id)
            for (token, selection) in state.pausers where selection.contains(id) {
                // A reload's new driver takes over the name: the old one is not left paused while it closes.
                if let previous, previous !== flowControl { previous.resume(by: token) }
                flowControl.pause(by: token)
            }
        }
    }

    public func unregister(upstream: String, flowControl: any UpstreamFlowControl) {
        let id = directory.id(for: upstream).0
        state.withLockedValue { state in
            guard let control = state.controls[id], control === flowControl else { return }
            state.controls[id] = nil
            for (token, selection) in state.pausers where selection.contains(id) {
                control.resume(by: token)
            }
        }
    }

    func pause(by token: ObjectIdentifier, upstreams: UpstreamSelection) {
        state.withLockedValue { state in
            guard state.pausers[token] == nil else { return }
            state.pausers[token] = upstreams
            for (id, control) in state.controls where upstreams.contains(id) {
                control.pause(by: token)
            }
        }
    }

    func resume(by token: ObjectIdentifier) {
        state.withLockedValue { state in
            guard let selection = state.pausers.removeValue(forKey: token) else { return }
            for (id, control) in state.controls where selection.contains(id) {
                control.resume(by: token)
            }
        }
    }

    func isPausing(_ token: ObjectIdentifier) -> Bool {
        state.withLockedValue { $0.pausers[token] != nil }
    }
}
