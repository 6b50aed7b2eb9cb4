package corfs.cli;

/** Just enough JSON writing for the CLI's --json output. */
final class Json {
    private final StringBuilder b = new StringBuilder();
    private boolean first = true;

    Json open() {
        b.append('{');
        first = true;
        return this;
    }

    Json close() {
        b.append('}');
        first = false;
        return this;
    }

    private Json key(String k) {
        if (!first) {
            b.append(',');
        }
        first = false;
        quote(b, k);
        b.append(':');
        return this;
    }

    Json put(String k, String v) {
        key(k);
        if (v == null) {
            b.append("null");
        } else {
            quote(b, v);
        }
        return this;
    }

    Json put(String k, long v) {
        key(k);
        b.append(v);
        return this;
    }

    Json put(String k, boolean v) {
        key(k);
        b.append(v);
        return this;
    }

    Json raw(String k, String json) {
        key(k);
        b.append(json);
        return this;
    }

    static void quote(StringBuilder b, String s) {
        corfs.control.StatusFormat.jsonString(b, s);
    }

    @Override
    public String toString() {
        return b.toString();
    }
}
