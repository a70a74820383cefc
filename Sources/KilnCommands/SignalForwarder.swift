import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Catches signals sent to kiln and hands them to `handler` (to forward them to a sandbox)
/// instead of letting them kill kiln before it has cleaned up.
final class SignalForwarder: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let signals: [Int32]

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        for signal in signals {
            Glibc.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler { handler(signal) }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        for signal in signals { Glibc.signal(signal, SIG_DFL) }
    }
}
