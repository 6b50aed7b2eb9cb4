package corfs.control;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.control.ControlCommand.Pause;
import corfs.control.ControlCommand.Speed;
import corfs.control.ControlCommand.Stream;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@DisplayName("ControlFile")
class ControlFileTest {

    /** Records what reaches it; fails commands on the image "busy" with BUSY, like a running job would. */
    static final class FakeTarget implements CommandTarget {
        record Executed(Thread thread, ControlCommand command) { }

        record Recorded(String image, String message) { }

        final List<Executed> executed = new CopyOnWriteArrayList<>();
        final List<Recorded> errors = new CopyOnWriteArrayList<>();
        final AtomicLong doneBytes = new AtomicLong();
        /** Commands by the thread that executed them; each list is touched by its own thread only. */
        final Map<Thread, List<ControlCommand>> byThread = new ConcurrentHashMap<>();

        @Override
        public void execute(ControlCommand command) throws IOException {
            if ("busy".equals(command.image())) {
                throw new CorfsException(Reason.BUSY, "a job already runs on busy");
            }
            executed.add(new Executed(Thread.currentThread(), command));
            byThread.computeIfAbsent(Thread.currentThread(), t -> new ArrayList<>()).add(command);
        }

        @Override
        public void recordError(String image, String message) {
            errors.add(new Recorded(image, message));
        }

        @Override
        public List<LeafStatus> status() {
            return List.of(new LeafStatus("a.img", 1L << 30, 65536, 0, 0, false, JobKind.STREAM, JobState.RUNNING,
                    1, doneBytes.getAndAdd(65536), 1L << 30, 0, 0, -1, OnError.STOP, null, null, List.of(), null));
        }

        List<ControlCommand> commands() {
            return executed.stream().map(Executed::command).toList();
        }
    }

    private FakeTarget target;
    private ControlFile control;
    private long fh;

    @BeforeEach
    void setUp() {
        target = new FakeTarget();
        control = new ControlFile(target);
        fh = control.openHandle().id();
    }

    private int write(String text) throws IOException {
        return control.write(fh, ByteBuffer.wrap(text.getBytes(UTF_8)));
    }

    private CorfsException rejected(Reason reason, byte[] bytes) {
        CorfsException e = assertThrows(CorfsException.class, () -> control.write(fh, ByteBuffer.wrap(bytes)));
        assertEquals(reason, e.reason(), e.getMessage());
        return e;
    }

    @Nested
    @DisplayName("writing")
    class Writing {
        @Test
        @DisplayName("one line executes one command and returns the byte count")
        void oneLine() throws IOException {
            assertEquals(7, write("stream\n"));
            assertEquals(List.of(new Stream(null, null, null)), target.commands());
            assertEquals(List.of(), target.errors);
        }

        @Test
        @DisplayName("a command split over writes runs once, when its newline arrives")
        void split() throws IOException {
            assertEquals(3, write("str"));
            assertEquals(List.of(), target.commands());
            assertEquals(3, control.handle(fh).pendingBytes());
            write("eam a.img sp");
            assertEquals(List.of(), target.commands());
            write("eed=1M\npau");
            assertEquals(List.of(new Stream("a.img", 1L << 20, null)), target.commands());
            write("se\n");
            assertEquals(List.of(new Stream("a.img", 1L << 20, null), new Pause(null)), target.commands());
            assertEquals(0, control.handle(fh).pendingBytes());
        }

        @Test
        @DisplayName("several lines in one write run in order; CRLF, blanks and comments are fine")
        void multiLine() throws IOException {
            write("stream a.raw\r\n\n# comment\n   \nstream b.raw\nspeed b.raw 5M\n");
            assertEquals(List.of(new Stream("a.raw", null, null), new Stream("b.raw", null, null),
                    new Speed("b.raw", 5L << 20)), target.commands());
        }

        @Test
        @DisplayName("a bad line anywhere in a write executes nothing of it, and is recorded")
        void badLineExecutesNothing() throws IOException {
            CorfsException e = rejected(Reason.INVALID_ARGUMENT, "stream a\npause a\nstreem b\ncancel a\n".getBytes(UTF_8));
            assertTrue(e.getMessage().contains("'streem'"), e.getMessage());
            assertEquals(List.of(), target.commands());
            assertEquals(List.of(new FakeTarget.Recorded(null, e.getMessage())), target.errors);
            write("pause\n");
            assertEquals(List.of(new Pause(null)), target.commands(), "the handle works after a rejection");
        }

        @Test
        @DisplayName("a rejected write drops the pending partial line too")
        void rejectionDropsPending() throws IOException {
            write("stream a");
            rejected(Reason.INVALID_ARGUMENT, ".img on_error=never\nstream b".getBytes(UTF_8));
            assertEquals(0, control.handle(fh).pendingBytes());
            write("cancel\n");
            assertEquals(List.of(new ControlCommand.Cancel(null)), target.commands());
        }

        @Test
        @DisplayName("when line k fails to execute, earlier lines stay executed and later ones do not run")
        void executionFailure() throws IOException {
            CorfsException e = rejected(Reason.BUSY, "pause a\nstream busy\npause b\n".getBytes(UTF_8));
            assertEquals(List.of(new Pause("a")), target.commands());
            assertEquals(List.of(new FakeTarget.Recorded("busy", e.getMessage())), target.errors);
        }

        @Test
        @DisplayName("flush executes an unterminated line, once")
        void flush() throws IOException {
            write("stream a.img");
            control.flush(fh);
            control.flush(fh);
            assertEquals(List.of(new Stream("a.img", null, null)), target.commands());
        }

        @Test
        @DisplayName("flush of a bad unterminated line throws, records and empties the line")
        void flushBad() throws IOException {
            write("stream a.img speed=fast");
            CorfsException e = assertThrows(CorfsException.class, () -> control.flush(fh));
            assertEquals(Reason.INVALID_ARGUMENT, e.reason());
            assertEquals(1, target.errors.size());
            assertEquals(0, control.handle(fh).pendingBytes());
            control.flush(fh);
            assertEquals(List.of(), target.commands());
        }

        @Test
        @DisplayName("a line of 4096 bytes plus CRLF is accepted, one byte more is not")
        void lineLimit() throws IOException {
            String image = "i".repeat(ControlParser.MAX_LINE_BYTES - "pause ".length());
            write("pause " + image + "\r\n");
            assertEquals(List.of(new Pause(image)), target.commands());
            rejected(Reason.INVALID_ARGUMENT, ("pause " + image + "x\n").getBytes(UTF_8));
            assertEquals(1, target.commands().size());
        }

        @Test
        @DisplayName("an unterminated line is bounded, across writes and within one 1 MiB write")
        void oversizedPending() throws IOException {
            for (int i = 0; i < 4; i++) {
                write("x".repeat(1024));
            }
            CorfsException e = rejected(Reason.INVALID_ARGUMENT, "xx".getBytes(UTF_8));
            assertTrue(e.getMessage().contains("longer than 4096"), e.getMessage());
            assertEquals(0, control.handle(fh).pendingBytes());
            byte[] huge = new byte[1 << 20];
            Arrays.fill(huge, (byte) 'a');
            rejected(Reason.INVALID_ARGUMENT, huge);
            huge[huge.length - 1] = '\n';
            rejected(Reason.INVALID_ARGUMENT, huge);
            assertEquals(0, control.handle(fh).pendingBytes());
            write("pause\n");
            assertEquals(List.of(new Pause(null)), target.commands());
        }

        @ParameterizedTest(name = "[{index}] {0}")
        @ValueSource(strings = {"00", "c328", "c080", "ff", "80", "eda080", "f4908080", "e282", "0d0d", "1b"})
        @DisplayName("NUL, control characters and invalid UTF-8 are rejected")
        void badBytes(String hex) {
            byte[] bad = java.util.HexFormat.of().parseHex(hex);
            byte[] line = new byte[bad.length + 12];
            byte[] prefix = "pause a".getBytes(UTF_8);
            System.arraycopy(prefix, 0, line, 0, prefix.length);
            System.arraycopy(bad, 0, line, prefix.length, bad.length);
            System.arraycopy(".img\n".getBytes(UTF_8), 0, line, prefix.length + bad.length, 5);
            rejected(Reason.INVALID_ARGUMENT, line);
            assertEquals(List.of(), target.commands());
        }

        @Test
        @DisplayName("valid multi-byte UTF-8 split across writes decodes once whole")
        void utf8Split() throws IOException {
            byte[] b = "pause é😀\n".getBytes(UTF_8);
            control.write(fh, ByteBuffer.wrap(b, 0, 7));
            control.write(fh, ByteBuffer.wrap(b, 7, 3));
            control.write(fh, ByteBuffer.wrap(b, 10, b.length - 10));
            assertEquals(List.of(new Pause("é😀")), target.commands());
        }

        @Test
        @DisplayName("takes the bytes from position to limit and leaves the buffer's position alone")
        void bufferWindow() throws IOException {
            ByteBuffer buf = ByteBuffer.wrap("garbagepause x\ngarbage".getBytes(UTF_8));
            buf.position(7).limit(15);
            assertEquals(8, control.write(fh, buf));
            assertEquals(7, buf.position());
            assertEquals(List.of(new Pause("x")), target.commands());
        }
    }

    @Nested
    @DisplayName("reading and handles")
    class Reading {
        @Test
        @DisplayName("a read in pieces sees one snapshot; offset 0 takes a fresh one")
        void snapshots() throws IOException {
            byte[] whole = new byte[4096];
            ByteBuffer first = ByteBuffer.allocate(10);
            assertEquals(10, control.read(fh, first, 0));
            ByteBuffer rest = ByteBuffer.allocate(4096);
            int n = control.read(fh, rest, 10);
            System.arraycopy(first.array(), 0, whole, 0, 10);
            System.arraycopy(rest.array(), 0, whole, 10, n);
            String text = new String(whole, 0, 10 + n, UTF_8);
            assertTrue(text.contains(" done_bytes=0 "), text);
            assertEquals(0, control.read(fh, ByteBuffer.allocate(10), 10 + n));
            assertEquals(0, control.read(fh, ByteBuffer.allocate(10), 1L << 40));
            ByteBuffer again = ByteBuffer.allocate(4096);
            int m = control.read(fh, again, 0);
            assertTrue(new String(again.array(), 0, m, UTF_8).contains(" done_bytes=65536 "));
        }

        @Test
        @DisplayName("the snapshot is the rendered status in UTF-8")
        void statusSnapshot() {
            byte[] s = control.statusSnapshot();
            assertTrue(new String(s, UTF_8).startsWith("image=a.img size=1073741824 "));
            assertTrue(new String(s, UTF_8).endsWith(" error=-\n"));
        }

        @Test
        @DisplayName("handles have distinct non-zero ids, and release is idempotent")
        void handles() throws IOException {
            ControlFile.Handle h = control.openHandle();
            assertNotEquals(0, h.id());
            assertNotEquals(fh, h.id());
            assertSame(h, control.handle(h.id()));
            assertEquals(2, control.openHandles());
            control.write(h.id(), ByteBuffer.wrap("pause".getBytes(UTF_8)));
            control.release(h.id());
            control.release(h.id());
            assertNull(control.handle(h.id()));
            assertEquals(List.of(), target.commands(), "release does not execute a pending line");
            CorfsException e = assertThrows(CorfsException.class,
                    () -> control.write(h.id(), ByteBuffer.wrap("pause\n".getBytes(UTF_8))));
            assertEquals(Reason.INVALID_ARGUMENT, e.reason());
            assertThrows(CorfsException.class, () -> control.read(h.id(), ByteBuffer.allocate(1), 0));
            assertThrows(CorfsException.class, () -> control.flush(h.id()));
        }

        @Test
        @DisplayName("handles keep their pending lines apart")
        void separateHandles() throws IOException {
            long other = control.openHandle().id();
            write("pau");
            control.write(other, ByteBuffer.wrap("canc".getBytes(UTF_8)));
            write("se\n");
            control.write(other, ByteBuffer.wrap("el\n".getBytes(UTF_8)));
            assertEquals(List.of(new Pause(null), new ControlCommand.Cancel(null)), target.commands());
        }

        @Test
        @DisplayName("status bytes match what a shell would read with cat")
        void catWholeFile() throws IOException {
            ByteBuffer dst = ByteBuffer.allocate(1 << 16);
            long offset = 0;
            int n;
            while ((n = control.read(fh, dst, offset)) > 0) {
                offset += n;
            }
            byte[] got = Arrays.copyOf(dst.array(), (int) offset);
            byte[] expected = StatusFormat.render(new FakeTarget().status()).getBytes(UTF_8);
            assertArrayEquals(expected, got);
        }
    }
}
