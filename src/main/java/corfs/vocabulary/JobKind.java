package corfs.vocabulary;

/** What a background job does. Codes are persisted in the leaf's metadata: never renumber. */
public enum JobKind {
    NONE(0), STREAM(1), COMMIT(2);

    private final int code;

    JobKind(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static JobKind ofCode(int code) {
        for (JobKind k : values()) {
            if (k.code == code) {
                return k;
            }
        }
        throw new IllegalArgumentException("unknown job kind code " + code);
    }

    /** The word used in the control file and status. */
    public String word() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
