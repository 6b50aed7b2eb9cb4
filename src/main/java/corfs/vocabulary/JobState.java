package corfs.vocabulary;

/** A job's state. Codes are persisted in the leaf's metadata: never renumber. */
public enum JobState {
    IDLE(0), RUNNING(1), PAUSED(2), COMPLETED(3), CANCELLED(4), FAILED(5), COMPLETED_WITH_ERRORS(6);

    private final int code;

    JobState(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static JobState ofCode(int code) {
        for (JobState s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown job state code " + code);
    }

    /** True while the job holds its leaf: a new job cannot start. */
    public boolean isActive() {
        return this == RUNNING || this == PAUSED;
    }

    public String word() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
