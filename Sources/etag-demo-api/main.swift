import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `etag-demo-api [--listen 127.0.0.1:9000]`: the bundled legacy persons API (no ETags) for the quick start.
struct DemoAPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etag-demo-api",
        abstract: "A small in-memory persons API without ETags, to put etag-proxy in front of.")

    @Option(name: .long, help: "HOST:PORT to listen on (IPv4).")
    var listen = "127.0.0.1:9000"

    func run() throws {
        // A parent may have spawned us with SIGTERM/SIGINT blocked (the mask is inherited): stop on them anyway.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen must be HOST:PORT") }
        try DemoServer().serve(host: String(parts[0]), port: port)
    }
}

DemoAPICommand.main()
