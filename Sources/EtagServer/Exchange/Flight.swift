import EtagCore
import EtagHTTP

/// A complete upstream 200 with its tag, as handed from a flight's leader to the requests collapsed into it.
struct TaggedResponse {
    let head: ResponseHead
    let body: HeldBytes
    let tag: [UInt8]
    /// The tag is the proxy's own (false: the upstream's, kept).
    let ours: Bool
    let stored: Bool
    /// The response's cache directives when they were parsed for the store (nil: not parsed yet).
    let directives: ResponseCacheDirectives?
}

/// Requests for one cache key in flight on one worker: the leader's upstream fetch answers all of them.
/// Held by the worker's `flights` table while the leader's fetch runs; waiters are removed when they go away.
final class Flight {
    unowned let leader: ClientConnection
    var waiters: [ClientConnection] = []
    init(leader: ClientConnection) { self.leader = leader }
}

/// An exchange's part in single-flight.
enum FlightRole {
    case none
    /// Its fetch answers the waiters of the flight for `key`.
    case leader(key: Digest20)
    /// It waits on `flight`, and sends `head` itself if the leader's answer cannot be shared.
    case waiting(Flight, head: [UInt8])
}

/// Single-flight per worker: concurrent misses for one key wait for the first one's upstream answer instead of
/// each asking the upstream. Each waiter then evaluates its own preconditions against the shared 200.
extension ClientConnection {
    /// Joins a flight for the exchange's key, or starts one. Returns true when this exchange now waits.
    func joinFlight(upstreamHead: [UInt8]) -> Bool {
        guard settings.collapse, let key = read?.key, bodyDone else { return false }
        if let flight = worker.exchanges.flights[key], flight.leader !== self {
            flight.waiters.append(self)
            self.flight = .waiting(flight, head: upstreamHead)
            return true
        }
        worker.exchanges.flights[key] = Flight(leader: self)
        flight = .leader(key: key)
        return false
    }

    /// The leader's exchange is over: share its tagged 200, or let every waiter ask the upstream itself.
    func settleFlight(_ result: TaggedResponse?) {
        guard case .leader(let key) = flight else { return }
        flight = .none
        guard let flight = worker.exchanges.flights[key], flight.leader === self else { return }
        worker.exchanges.flights.removeValue(forKey: key)
        var shared = result
        if let r = result, !flight.waiters.isEmpty {
            // Only a representation the key fully selects is shared: not when the upstream varies on fields
            // outside the key (the waiters may differ in them), nor a private or no-store one.
            let d = r.directives ?? ResponseCacheDirectives(r.head.head)
            if d.varyStar || d.isPrivate || d.noStore || d.vary.contains(where: { !settings.keyHeaders.contains($0) }) {
                shared = nil
            }
        }
        for w in flight.waiters where !w.isClosing {
            guard case .waiting(let f, let head) = w.flight, f === flight else { continue }
            w.flight = .none
            if let shared {
                w.respondTagged(shared, collapsed: true)
            } else {
                w.forward(head, method: .get, replayable: true)
            }
        }
    }

    /// A waiter that goes away leaves its flight; a leader settles it without an answer.
    func leaveFlight() {
        if case .waiting(let f, _) = flight {
            f.waiters.removeAll { $0 === self }
            flight = .none
        }
        settleFlight(nil)
    }
}
