/// The envelope encoder's per-message helpers, for `wsrelay-microbench` (bench/microbench), which measures them
/// against the libraries that could replace them. `package`: visible to this package's targets, not public API.
package enum MicrobenchAccess {
    package static func maximumEscapedSize(_ count: Int) -> Int {
        JSONStringEscaper.maximumOutputSize(forInputSize: count)
    }

    package static func escape(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Int {
        JSONStringEscaper.escape(input, into: out)
    }

    package static func base64(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Int {
        Base64.encode(input, into: out)
    }
}
