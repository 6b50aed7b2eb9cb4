package corfs.vocabulary;

/**
 * What a job does when the backing fails to read (in the spirit of QEMU's on-error). Codes are
 * persisted: never renumber.
 */
public enum OnError {
    /** Stop in state failed, with the error and offset in the status; resume retries from there. */
    STOP(0),
    /** Retry the failing range with backoff until it reads or the job is cancelled. */
    RETRY(1),
    /** Record the unreadable extent, go on, and finish as completed_with_errors. */
    SKIP(2);

    private final int code;

    OnError(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static OnError ofCode(int code) {
        for (OnError o : values()) {
            if (o.code == code) {
                return o;
            }
        }
        throw new IllegalArgumentException("unknown on_error code " + code);
    }

    public static OnError ofWord(String word) {
        for (OnError o : values()) {
            if (o.word().equals(word)) {
                return o;
            }
        }
        throw new IllegalArgumentException("on_error must be stop, retry or skip, not '" + word + "'");
    }

    public String word() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
