import Glibc

/// A value computed on a thread of its own while the caller goes on with
/// other work; `value()` waits for it. One thread at a time may call
/// `value()`; another Background's body may be that thread. Dropped without
/// `value()`, it still waits for its thread.
public final class Background<Value> {
    /// What the thread fills in; the thread holds it, never the Background,
    /// so the thread's end never runs the Background's deinit.
    private final class Slot: ThreadWork, @unchecked Sendable {
        let body: () -> Value
        var result: Value?
        init(_ body: @escaping () -> Value) { self.body = body }
        override func run() { result = body() }
    }

    private let slot: Slot
    private var thread = pthread_t()
    private var running = false

    /// Starts `body` on a new thread; where no thread can be made, runs it
    /// here and now.
    public init(_ body: @escaping () -> Value) {
        slot = Slot(body)
        let context = Unmanaged<ThreadWork>.passRetained(slot).toOpaque()
        running = pthread_create(&thread, nil, { context in
            Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context) == 0
        if !running {
            Unmanaged<ThreadWork>.fromOpaque(context).release()
            slot.run()
        }
    }

    /// The body's result, once its thread has finished.
    public func value() -> Value {
        if running {
            pthread_join(thread, nil)
            running = false
        }
        return slot.result!
    }

    deinit {
        if running { pthread_join(thread, nil) }
    }
}

/// What a thread runs (a C entry point cannot name a generic type).
private class ThreadWork {
    func run() {}
}
