/// A file or socket that could not be opened, bound or prepared at startup or reload (a sink, the control
/// socket, the metrics listener): one line naming the part, the path or address, and the cause.
public struct SetupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
