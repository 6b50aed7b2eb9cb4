package corfs.image;

import corfs.CorfsException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Extents from per-cluster order, and the merge of several boots, against a plain model. */
@DisplayName("AccessProfile: fromClusters and merge against a model")
class AccessProfileMergeTest {
    private static final int CS = 4096;
    private static final long SIZE = 300L * CS - 100; // the last cluster is short
    private static final String TOKEN = "file:1:2:3";

    @Test
    @DisplayName("adjacent increasing clusters merge into one extent with the first one's time; the last is short")
    void fromClusters() {
        AccessProfile p = AccessProfile.fromClusters(TOKEN, SIZE, CS, new long[] {5, 6, 7, 3, 2, 299, 298, 10},
                new long[] {0, 1, 2, 3, 4, 5, 6, 7}, 8);
        assertEquals(List.of(new AccessProfile.Entry(5 * CS, 3 * CS, 0), new AccessProfile.Entry(3 * CS, CS, 3),
                new AccessProfile.Entry(2 * CS, CS, 4), new AccessProfile.Entry(299 * CS, SIZE - 299 * CS, 5),
                new AccessProfile.Entry(298 * CS, CS, 6), new AccessProfile.Entry(10 * CS, CS, 7)), p.entries());
    }

    @RepeatedTest(20)
    @DisplayName("merge: every cluster any input touched, by median first touch, ties by offset")
    void mergeMatchesModel(RepetitionInfo info) throws Exception {
        Random random = new Random(info.getCurrentRepetition());
        int inputs = 1 + random.nextInt(5);
        List<AccessProfile> profiles = new ArrayList<>();
        Map<Long, List<Long>> touches = new TreeMap<>();
        for (int k = 0; k < inputs; k++) {
            int n = random.nextInt(120);
            List<Long> order = new ArrayList<>();
            for (long c = 0; c < 300; c++) {
                order.add(c);
            }
            java.util.Collections.shuffle(order, random);
            // runs of adjacent clusters, as boots read them, with few distinct times so ties happen
            List<Long> clusters = new ArrayList<>();
            for (int i = 0; clusters.size() < n && i < order.size(); i++) {
                long start = order.get(i);
                for (long c = start; c < Math.min(300, start + 1 + random.nextInt(4)); c++) {
                    if (!clusters.contains(c)) {
                        clusters.add(c);
                    }
                }
            }
            long[] cs = clusters.stream().mapToLong(Long::longValue).toArray();
            long[] ms = new long[cs.length];
            long t = 0;
            for (int i = 0; i < cs.length; i++) {
                t += random.nextInt(3);
                ms[i] = t;
            }
            AccessProfile p = AccessProfile.fromClusters(TOKEN, SIZE, CS, cs, ms, cs.length);
            profiles.add(AccessProfile.parse(p.toBytes(), "input" + k)); // through the file format
            // the model sees each cluster with the time of the extent holding it
            for (AccessProfile.Entry e : p.entries()) {
                for (long off = e.offset(); off < e.end(); off += CS) {
                    touches.computeIfAbsent(off / CS, x -> new ArrayList<>()).add(e.firstMillis());
                }
            }
        }
        List<long[]> model = new ArrayList<>(); // {cluster, median}
        touches.forEach((c, times) -> {
            List<Long> sorted = times.stream().sorted().toList();
            int n = sorted.size();
            model.add(new long[] {c, (sorted.get((n - 1) / 2) + sorted.get(n / 2)) / 2});
        });
        model.sort(Comparator.<long[]>comparingLong(x -> x[1]).thenComparingLong(x -> x[0]));
        AccessProfile expected = AccessProfile.fromClusters(TOKEN, SIZE, CS,
                model.stream().mapToLong(x -> x[0]).toArray(), model.stream().mapToLong(x -> x[1]).toArray(),
                model.size());
        List<String> names = new ArrayList<>();
        for (int k = 0; k < inputs; k++) {
            names.add("input" + k);
        }
        AccessProfile merged = AccessProfile.merge(profiles, names);
        assertEquals(expected.entries(), merged.entries());
        assertEquals(touches.size() * (long) CS - (touches.containsKey(299L) ? 100 : 0), merged.totalBytes());
    }

    @Test
    @DisplayName("merge: the median of an even count is the mean of the middle two; ties go by offset")
    void medianAndTies() throws Exception {
        AccessProfile a = AccessProfile.fromClusters(TOKEN, SIZE, CS, new long[] {1, 9}, new long[] {10, 40}, 2);
        AccessProfile b = AccessProfile.fromClusters(TOKEN, SIZE, CS, new long[] {9, 1, 4}, new long[] {0, 30, 20}, 3);
        AccessProfile m = AccessProfile.merge(List.of(a, b), List.of("a", "b"));
        // cluster 1: (10+30)/2 = 20; cluster 9: (40+0)/2 = 20; cluster 4: 20: all tie, by offset
        assertEquals(List.of(new AccessProfile.Entry(CS, CS, 20), new AccessProfile.Entry(4 * CS, CS, 20),
                new AccessProfile.Entry(9 * CS, CS, 20)), m.entries());
    }

    @Test
    @DisplayName("merge refuses another backing or cluster size, naming the odd file")
    void refusesAMix() {
        AccessProfile a = AccessProfile.fromClusters(TOKEN, SIZE, CS, new long[] {1}, new long[] {1}, 1);
        AccessProfile other = AccessProfile.fromClusters("file:9:9:9", SIZE, CS, new long[] {1}, new long[] {1}, 1);
        AccessProfile big = AccessProfile.fromClusters(TOKEN, SIZE, 2 * CS, new long[] {1}, new long[] {1}, 1);
        for (AccessProfile odd : List.of(other, big)) {
            CorfsException e = assertThrows(CorfsException.class,
                    () -> AccessProfile.merge(List.of(a, a, odd), List.of("one.prof", "two.prof", "odd.prof")));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains("odd.prof") && !e.getMessage().contains("two.prof"), e.getMessage());
        }
    }
}
