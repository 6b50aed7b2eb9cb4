/**
 * A client for the Network Block Device protocol (NetworkBlockDevice/nbd {@code doc/proto.md}), pure Java:
 * the transport an NBD backing is built on.
 *
 * <ul>
 * <li>{@link corfs.backing.nbd.NbdUri}: the export's address ({@code doc/uri.md}), parsed strictly.</li>
 * <li>{@link corfs.backing.nbd.NbdClient#connect}: connects and negotiates ({@code Handshake}), giving an
 *     {@link corfs.backing.nbd.NbdConnection}: asynchronous read, write, flush, trim, write-zeroes and
 *     block status, many in flight on one connection.</li>
 * <li>{@code NbdWire}/{@code TlsWire}/{@code WireReader}: the byte stream, plain or TLS, over TCP or a
 *     Unix socket.</li>
 * </ul>
 *
 * <p>Failures are {@link corfs.backing.nbd.NbdException}s ({@link corfs.CorfsException}s, mostly
 * {@code IO}), each message starting with the URI; a deadline is an
 * {@link corfs.backing.nbd.NbdTimeoutException}. This package uses only {@code corfs} (the root package):
 * it knows nothing of leaves or of the {@code Backing} interface, which adapts it.
 */
package corfs.backing.nbd;
