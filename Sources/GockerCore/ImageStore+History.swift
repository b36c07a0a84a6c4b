/// `gocker history`: an image's steps, newest first, in docker's columns.
extension ImageStore {
    public struct HistoryRow: Sendable, Equatable {
        /// The image this step made, when it is here ("<missing>" otherwise).
        public var image: String
        public var created: String?
        public var createdBy: String
        public var size: Int64
        public var comment: String
    }

    public func historyRows(_ image: ImageRecord) throws(GockerError) -> [HistoryRow] {
        let steps = image.history ?? image.layers.map { _ in ImageHistory(created: image.created) }
        let all = try images()
        var rows: [HistoryRow] = []
        var layerCount = 0
        for (i, step) in steps.enumerated() {
            var size: Int64 = 0
            if step.empty_layer != true, layerCount < image.layers.count {
                size = layerSize(image.layers[layerCount])
                layerCount += 1
            }
            let prefix = Array(image.layers.prefix(layerCount))
            let made = i == steps.count - 1 ? image
                : all.first { $0.layers == prefix && ($0.history?.count ?? $0.layers.count) == i + 1 }
            rows.append(HistoryRow(image: made.map { "sha256:" + $0.id } ?? "<missing>", created: step.created,
                                   createdBy: step.created_by ?? "", size: size, comment: step.comment ?? ""))
        }
        return rows.reversed()
    }

    /// The table docker prints; `noTrunc` keeps ids and commands whole.
    public static func historyTable(_ rows: [HistoryRow], noTrunc: Bool, now: Double = Timestamp.nowSeconds()) -> String {
        var cells = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
        for r in rows {
            let id = r.image == "<missing>" || noTrunc ? r.image : String(r.image.dropFirst(7).prefix(12))
            let created = r.created.flatMap(Timestamp.parse).map { HumanUnits.duration(seconds: now - $0) + " ago" } ?? "N/A"
            var by = r.createdBy
            if !noTrunc && by.count > 45 { by = String(by.prefix(44)) + "…" }
            cells.append([id, created, by, HumanUnits.size(r.size), r.comment])
        }
        return TextTable.render(cells)
    }
}
