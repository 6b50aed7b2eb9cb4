package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

/**
 * {@link MountCommand#parseQuickly}, the mount's parse without picocli's model: wherever it answers, it answers
 * what picocli answers; everything else (errors, help, unusual forms) it leaves to picocli.
 */
@DisplayName("corfs mount's quick parse")
class MountParseTest {

    /** What a parse decided, field by field. */
    private static List<Object> fields(MountCommand m) {
        return List.of(m.foreground, m.readOnly, m.force, m.reportReady, m.journal, m.options,
                String.valueOf(m.log), m.paths);
    }

    private static MountCommand picocli(String... args) {
        MountCommand m = new MountCommand();
        new CommandLine(m).setExpandAtFiles(false).parseArgs(Arrays.copyOfRange(args, 1, args.length)); // as Main.commandLine
        return m;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "mount|a.raw|/mnt",
        "mount|a.raw|b.raw|/mnt",
        "mount|-f|a.raw|/mnt",
        "mount|--foreground|--read-only|--force|a.raw|/mnt",
        "mount|-o|ro,threads=2|-o|debug|a.raw|/mnt",
        "mount|-f|--report-ready|--log|/var/log/x.log|-o|backing_timeout=5|--|/a.raw|/m p",
        "mount|-f|--report-ready|--journal|--|/a.raw|-dash",
        "mount|--|-a.raw|--force",
        "mount|-|/mnt",
        "mount|a.raw|/mnt\nx",
        "mount|--|a.raw|--|/mnt",
        "mount|--|--|/mnt",
        "mount|a.raw|-",
        "mount|-o||a.raw|/mnt",
        "mount|--log||a.raw|/mnt",
        "mount|-o|ro|--|-f|/mnt",
        "mount|-o|ro|-o|ro|a.raw|/mnt",
        "mount|@a.raw|/mnt",
        "mount|-o|@x|a.raw|/mnt",
        "mount|--log|@x|a.raw|/mnt",
    })
    @DisplayName("parses as picocli does")
    void sameAsPicocli(String line) {
        String[] args = line.split("\\|");
        MountCommand quick = MountCommand.parseQuickly(args);
        assertNotNull(quick, line);
        assertEquals(fields(picocli(args)), fields(quick), line);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "mount|a.raw",
        "mount|--help|a.raw|/mnt",
        "mount|-h",
        "mount|--version|a.raw|/mnt",
        "mount|--force|--force|a.raw|/mnt",
        "mount|-f|--foreground|a.raw|/mnt",
        "mount|--log|x|--log|y|a.raw|/mnt",
        "mount|-oro|a.raw|/mnt",
        "mount|--log=x|a.raw|/mnt",
        "mount|-o|-x|a.raw|/mnt",
        "mount|a.raw|/mnt|-o",
        "mount|--bogus|a.raw|/mnt",
        "mount|-fo|ro|a.raw|/mnt",
        "mount|a.raw|--force|/mnt",
        "mount|a.raw|--|/mnt",
        "status|a.raw|/mnt",
        "mount-helper|a.raw|/mnt",
    })
    @DisplayName("leaves anything else to picocli")
    void leavesTheRest(String line) {
        assertNull(MountCommand.parseQuickly(line.split("\\|")), line);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"mount|--force|--force|a.raw|/mnt", "mount|--log|x|--log|y|a.raw|/mnt", "mount|a.raw",
        "mount|-f|--foreground|a.raw|/mnt", "mount|a.raw|--force|/mnt", "mount|a.raw|--|/mnt"})
    @DisplayName("what it leaves as an error is one for picocli too")
    void errorsArePicoclis(String line) {
        assertThrows(CommandLine.ParameterException.class, () -> picocli(line.split("\\|")), line);
    }
}
