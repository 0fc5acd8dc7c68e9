/// WebSocket close codes (RFC 6455 §7.4) that wsrelay sends or must recognise.
public enum CloseCode {
    public static let normal: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let unsupportedData: UInt16 = 1003
    /// Never sent on the wire: "no status code was present".
    public static let noStatus: UInt16 = 1005
    /// Never sent on the wire: the connection dropped without a close frame.
    public static let abnormal: UInt16 = 1006
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
    /// Sent by a client whose server did not agree to an extension it needs (RFC 6455 §7.4.1).
    public static let mandatoryExtension: UInt16 = 1010
    public static let internalError: UInt16 = 1011

    /// Whether a peer may put `code` in a close frame. 1004–1006 and 1015 are reserved for local use, 1016–2999
    /// for future protocol versions; 3000–4999 belong to libraries and applications.
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }
}
