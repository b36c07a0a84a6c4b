import CGockerCore
import Glibc
import Synchronization

/// A value computed on a thread of its own while the caller goes on with
/// other work; `value()` waits for it. `then` queues more work on the same
/// thread, run once this work is done: a start that needs the cgroup driver
/// and then the container's groups makes one thread, not two (a new thread
/// waits for a core, and its stack is fresh memory to fault in).
///
/// One thread at a time may call `value()`; another Background's work may be
/// that thread, but not work queued on the same thread (it would wait for
/// itself). Dropped without `value()`, a Background still waits for its work
/// to finish. The thread blocks every signal: signals gocker forwards or
/// waits for (SIGCHLD) must reach the thread that waits for them.
public final class Background<Value> {
    /// What the work fills in: the thread holds this, and never the
    /// Background, so that the thread's end never runs the Background's
    /// deinit.
    private final class Slot: @unchecked Sendable {
        var result: Value?
    }

    private let runner: BackgroundThread
    private let slot = Slot()
    /// This work's place in its thread's queue (1 is the first).
    private let ticket: Int

    /// Starts `body` on a new thread; where no thread can be made, runs it
    /// here and now.
    public convenience init(_ body: @escaping () -> Value) {
        self.init(on: BackgroundThread(), body)
    }

    private init(on runner: BackgroundThread, _ body: @escaping () -> Value) {
        self.runner = runner
        let slot = self.slot
        ticket = runner.submit { slot.result = body() }
    }

    /// `body` on this Background's thread once this work is done, given
    /// its value.
    public func then<U>(_ body: @escaping (Value) -> U) -> Background<U> {
        let slot = self.slot
        return Background<U>(on: runner) { body(slot.result!) }
    }

    /// The work's result, once it is done.
    public func value() -> Value {
        runner.wait(for: ticket)
        return slot.result!
    }

    deinit { runner.release(waitingFor: ticket) }
}

/// One thread running queued work in order, for as long as a Background
/// that may queue more holds it.
final class BackgroundThread: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [() -> Void] = []
    private var submitted = 0
    private var finished = 0
    /// `finished`, readable without the lock (see `wait`).
    private let done = Atomic<Int>(0)
    /// Backgrounds alive on this thread: while one is, more work may come.
    private var holders = 0
    /// False where no thread could be made: work runs in the caller.
    private var threaded = false

    init() {
        pthread_mutex_init(lock, nil)
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(lock)
        changed.deallocate()
        lock.deallocate()
    }

    /// Queues `work` for one more holder; returns its ticket.
    func submit(_ work: @escaping () -> Void) -> Int {
        pthread_mutex_lock(lock)
        holders += 1
        submitted += 1
        let ticket = submitted
        if ticket == 1 { threaded = start() }
        guard threaded else {
            perform(work)
            pthread_mutex_unlock(lock)
            return ticket
        }
        queue.append(work)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
        return ticket
    }

    func wait(for ticket: Int) {
        // The work is most often due soon: spun for first (see gk_spin).
        var spin = gk_spinner()
        while done.load(ordering: .acquiring) < ticket {
            if gk_spin(&spin) == 0 { break }
        }
        if done.load(ordering: .acquiring) >= ticket { return }
        pthread_mutex_lock(lock)
        while finished < ticket { pthread_cond_wait(changed, lock) }
        pthread_mutex_unlock(lock)
    }

    /// A holder is gone once its work is done; the thread ends after the
    /// last.
    func release(waitingFor ticket: Int) {
        pthread_mutex_lock(lock)
        while finished < ticket { pthread_cond_wait(changed, lock) }
        holders -= 1
        if holders == 0 { pthread_cond_broadcast(changed) }
        pthread_mutex_unlock(lock)
    }

    /// The thread (detached: it holds this object until it ends). Called
    /// with the lock held.
    private func start() -> Bool {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        // On another CPU than this one: the work is meant to overlap.
        gk_attr_spread(&attr)
        let context = Unmanaged.passRetained(self).toOpaque()
        let body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { context in
            Unmanaged<BackgroundThread>.fromOpaque(context!).takeRetainedValue().loop()
            return nil
        }
        // The thread starts with every signal blocked (a new thread takes
        // its maker's mask).
        var all = sigset_t(), old = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        var thread = pthread_t()
        if pthread_create(&thread, &attr, body, context) == 0 { return true }
        Unmanaged<BackgroundThread>.fromOpaque(context).release()
        return false
    }

    private func loop() {
        pthread_mutex_lock(lock)
        while true {
            while queue.isEmpty && holders > 0 { pthread_cond_wait(changed, lock) }
            if queue.isEmpty { break }
            perform(queue.removeFirst())
        }
        pthread_mutex_unlock(lock)
    }

    /// Runs `work` without the lock (held on entry and on return), then
    /// counts it done and wakes whoever waits.
    private func perform(_ work: () -> Void) {
        pthread_mutex_unlock(lock)
        work()
        pthread_mutex_lock(lock)
        finished += 1
        done.store(finished, ordering: .releasing)
        pthread_cond_broadcast(changed)
    }
}

/// A one-time signal between threads: opened once, with an outcome (none,
/// or the error that stands for the work it waited on); `wait` blocks until
/// it is open, and any number of threads may wait (each one woken passes
/// the semaphore on to the next).
public final class Gate: @unchecked Sendable {
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private let outcome = Mutex<(isOpen: Bool, failure: GockerError?)>((false, nil))

    public init() { sem_init(semaphore, 0, 0) }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Opens it (a second time changes nothing).
    public func open(_ error: GockerError? = nil) {
        let first = outcome.withLock { o -> Bool in
            guard !o.isOpen else { return false }
            o = (true, error)
            return true
        }
        if first { sem_post(semaphore) }
    }

    /// Returns once it is open; throws the error it was opened with.
    public func wait() throws(GockerError) {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
        sem_post(semaphore)
        if let failure = outcome.withLock({ $0.failure }) { throw failure }
    }
}
