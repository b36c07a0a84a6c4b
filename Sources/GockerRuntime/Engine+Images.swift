import Glibc
import GockerCore

/// The image commands that need to know about containers.
extension Engine {
    /// What the containers under the data root hold: the image each was
    /// made from (and whether it runs), and the layers its overlay's
    /// lowerdir names in its record. A container keeps its
    /// layers after `rmi -f` removed its image, as in docker; they go with
    /// the next `rmi` after the container is removed.
    public func containerUsage() -> ImageStore.ContainerUsage {
        var usage = ImageStore.ContainerUsage()
        let layersDir = images.layerPath("")
        for id in containerIDs() {
            guard let record = try? load(id) else { continue }
            // Starting (its gocker or monitor alive) counts as running.
            let running = [.running, .paused, .restarting].contains(state(of: record))
            usage.containers.append(.init(id: record.id, imageID: record.imageID, running: running))
            guard let overlay = launchExtras(of: record)?.overlay else { continue }
            for option in overlay.split(separator: ",") where option.hasPrefix("lowerdir=") {
                for path in option.dropFirst("lowerdir=".count).split(separator: ":") where path.hasPrefix(layersDir) {
                    usage.layers.insert(String(path.dropFirst(layersDir.count)))
                }
            }
        }
        return usage
    }

    /// `gocker rmi`: each image in turn (see `ImageStore.remove`), then the
    /// layers nothing uses any more. `output` gets docker's lines; a failure
    /// is reported through `failed` and the others go on.
    public func removeImages(_ refs: [String], force: Bool, output: (String) -> Void,
                             failed: (GockerError) -> Void) {
        // Creates under way finish first (their records are then seen), and
        // no new one looks an image up until this is done.
        let lock = lockDataRoot(LOCK_EX)
        defer { if let lock { Sys.close(lock) } }
        let usage = containerUsage()
        for ref in refs {
            do {
                for line in try images.remove(ref, force: force, usage: usage) { output(line) }
            } catch {
                failed(error)
            }
        }
        do {
            try images.removeUnusedLayers(heldByContainers: usage.layers)
        } catch {
            failed(error)
        }
    }
}
