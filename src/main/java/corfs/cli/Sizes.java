package corfs.cli;

import java.util.Locale;

/** Byte counts on the command line ("64K", "1M", "10M") and for people ("1.5 GiB"). */
final class Sizes {
    private Sizes() {
    }

    /** Parses a count with an optional K/M/G/T suffix (powers of 1024, optional "iB"/"B"). */
    static long parse(String text) {
        String t = text.trim();
        String u = t.toUpperCase(Locale.ROOT);
        if (u.endsWith("IB")) {
            u = u.substring(0, u.length() - 2);
        } else if (u.endsWith("B") && u.length() > 1 && !Character.isDigit(u.charAt(u.length() - 2))) {
            u = u.substring(0, u.length() - 1);
        }
        int shift = 0;
        if (!u.isEmpty()) {
            switch (u.charAt(u.length() - 1)) {
                case 'K' -> shift = 10;
                case 'M' -> shift = 20;
                case 'G' -> shift = 30;
                case 'T' -> shift = 40;
                default -> shift = 0;
            }
        }
        String digits = shift == 0 ? u : u.substring(0, u.length() - 1);
        if (digits.isEmpty() || !digits.chars().allMatch(Character::isDigit)) {
            throw new IllegalArgumentException("'" + text + "' is not a size (use a number with K, M or G)");
        }
        try {
            long n = Long.parseLong(digits);
            if (shift > 0 && n > (Long.MAX_VALUE >> shift)) {
                throw new IllegalArgumentException("'" + text + "' is too large");
            }
            return n << shift;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is too large");
        }
    }

    /** "512 B", "64.0 KiB", "1.5 GiB". */
    static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB"};
        double v = bytes;
        int i = -1;
        while (v >= 1024 && i < units.length - 1) {
            v /= 1024;
            i++;
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[i]);
    }

    static String percent(long part, long whole) {
        return whole <= 0 ? "100.0%" : String.format(Locale.ROOT, "%.1f%%", 100.0 * part / whole);
    }

    /** picocli converter for size options. */
    static final class Converter implements picocli.CommandLine.ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            try {
                return parse(value);
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
