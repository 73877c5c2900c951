import EtagCore
import EtagHTTP

/// A complete upstream 200 with its tag, as handed from a flight's leader to the requests collapsed into it.
struct TaggedResponse {
    let head: ResponseHead
    let body: [UInt8]
    let tag: [UInt8]
    /// The tag is the proxy's own (false: the upstream's, kept).
    let ours: Bool
    let stored: Bool
}

/// Requests for one cache key in flight on one worker: the leader's upstream fetch answers all of them.
final class Flight {
    unowned let leader: ClientConnection
    var waiters: [ClientConnection] = []
    init(leader: ClientConnection) { self.leader = leader }
}

/// Single-flight per worker: concurrent misses for one key wait for the first one's upstream answer instead of
/// each asking the upstream. Each waiter then evaluates its own preconditions against the shared 200.
extension ClientConnection {
    /// Joins a flight for the exchange's key, or starts one. Returns true when this exchange now waits.
    func joinFlight(upstreamHead: [UInt8]) -> Bool {
        guard settings.collapse, let key = read?.key, bodyDone else { return false }
        if let flight = worker.flights[key], flight.leader !== self {
            flight.waiters.append(self)
            waitingHead = upstreamHead
            waitingOn = flight
            return true
        }
        worker.flights[key] = Flight(leader: self)
        isFlightLeader = true
        return false
    }

    /// The leader's exchange is over: share its tagged 200, or let every waiter ask the upstream itself.
    func settleFlight(_ result: TaggedResponse?) {
        guard isFlightLeader else { return }
        isFlightLeader = false
        guard let key = read?.key, let flight = worker.flights[key], flight.leader === self else { return }
        worker.flights.removeValue(forKey: key)
        var shared = result
        if let r = result {
            // Only a representation the key fully selects is shared: not when the upstream varies on fields
            // outside the key (the waiters may differ in them), nor a private or no-store one.
            let d = ResponseCacheDirectives(r.head.head)
            if d.varyStar || d.isPrivate || d.noStore || d.vary.contains(where: { !settings.keyHeaders.contains($0) }) {
                shared = nil
            }
        }
        for w in flight.waiters where !w.isClosing && w.waitingOn === flight {
            w.waitingOn = nil
            if let shared {
                w.waitingHead = nil
                w.responseStarted = true
                w.respondTagged(shared, collapsed: true)
            } else if let head = w.waitingHead {
                w.waitingHead = nil
                w.sendToUpstream(head, method: .get, replayable: true)
            }
        }
    }

    /// A waiter that goes away leaves its flight.
    func leaveFlight() {
        if let flight = waitingOn {
            flight.waiters.removeAll { $0 === self }
            waitingOn = nil
        }
        settleFlight(nil)
    }
}
