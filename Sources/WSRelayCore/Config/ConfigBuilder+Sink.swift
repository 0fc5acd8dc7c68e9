import TOMLKit

extension ConfigBuilder {
    /// One `[[sink]]` section; nil when its type is missing or invalid.
    func sink(_ r: TableReader, index: Int) -> SinkSettings? {
        let type = r.choice("type", ConfigSchema.sinkTypes, required: true)
        let upstreams =
            r.stringArray("upstreams", elementExpected: "an upstream name") { s in
                s.isEmpty ? "upstream name must not be empty" : nil
            } ?? []
        let format = r.enumValue("format", SinkFormat.self)
        let events = r.bool("events")

        var kind: SinkKind? = nil
        var path: String? = nil
        switch type {
        case "file":
            path = r.absolutePath("path", required: true)
            var s = FileSinkSettings(path: path ?? "")
            if let v = r.fileMode("mode") { s.mode = v }
            if let v = r.enumValue("fsync", FsyncPolicy.self) { s.fsync = v }
            if let v = r.duration("fsync_interval") { s.fsyncInterval = v }
            s.rotateSize = r.byteSize("rotate_size", min: 1 << 10)
            if let v = r.int("rotate_keep", range: 1...100_000) {
                s.rotateKeep = v
                if !r.contains("rotate_size") {
                    r.warning("rotate_keep", "rotate_keep has no effect without rotate_size")
                }
            }
            if let v = r.byteSize("buffer", min: 64 << 10) { s.buffer = v }
            if let v = r.enumValue("on_full", OnFullPolicy.self) { s.onFull = v }
            kind = .file(s)
        case "unix":
            path = r.absolutePath("path")
            let fdName = r.read("listen_fd_name", expected: "a socket-activation file descriptor name") {
                v -> ConfigConversion<String> in
                guard let s = v.string else { return .wrongType }
                guard !s.isEmpty, s.utf8.count <= 255, !s.contains(":"),
                    s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
                else {
                    return .invalid(
                        "invalid listen_fd_name \(ConfigValueDescription.quote(s)): expected up to 255 printable "
                            + "ASCII characters without \":\" (systemd FileDescriptorName=)"
                    )
                }
                return .ok(s)
            }
            if !r.contains("path") && !r.contains("listen_fd_name") {
                r.error("path", "a unix sink needs path, listen_fd_name (socket activation), or both")
            }
            var s = UnixSinkSettings(path: path)
            s.listenFDName = fdName
            if let v = r.fileMode("mode") { s.mode = v }
            s.owner = r.string("owner")
            s.group = r.string("group")
            if let v = r.idArray("allow_uids") { s.allowUIDs = v }
            if let v = r.idArray("allow_gids") { s.allowGIDs = v }
            if let v = r.byteSize("queue", min: 4 << 10) { s.queue = v }
            if let v = r.enumValue("slow_consumer", SlowConsumerPolicy.self) { s.slowConsumer = v }
            if let v = r.bool("allow_send") { s.allowSend = v }
            kind = .unix(s)
        case "stdout":
            kind = .stdout
        case "journal":
            kind = .journal
        case "jetstream":
            kind = jetStreamSink(r, upstreams: upstreams).map(SinkKind.jetstream)
        default:
            break
        }

        var allowed = ConfigSchema.sinkCommon
        if let type {
            allowed.formUnion(ConfigSchema.sinkByType[type] ?? [])
        } else {
            allowed = ConfigSchema.sinkAll
        }
        r.finish(allowed: allowed) { key in
            let owners = ConfigSchema.types(owning: key, in: ConfigSchema.sinkByType, order: ConfigSchema.sinkTypes)
            guard !owners.isEmpty, let type else { return nil }
            let list = owners.map { "\"\($0)\"" }.joined(separator: " or ")
            return "\(key) is only valid for sink type \(list) (this sink is type \"\(type)\")"
        }

        sinkInfo.append(SinkInfo(index: index, upstreams: upstreams, path: path))
        guard let kind else { return nil }
        var settings = SinkSettings(kind: kind)
        settings.upstreams = upstreams
        if let format { settings.format = format }
        if let events { settings.events = events }
        return settings
    }
}
