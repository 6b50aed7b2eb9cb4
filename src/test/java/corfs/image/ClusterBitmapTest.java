package corfs.image;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("ClusterBitmap")
class ClusterBitmapTest {

    @Test
    @DisplayName("set, clear, next and count agree with java.util.BitSet on random operations")
    void agreesWithBitSet() {
        long seed = System.nanoTime();
        Random r = new Random(seed);
        for (int round = 0; round < 50; round++) {
            int size = 1 + r.nextInt(1000);
            ClusterBitmap bitmap = new ClusterBitmap(size);
            BitSet model = new BitSet(size);
            for (int op = 0; op < 500; op++) {
                int i = r.nextInt(size);
                if (r.nextBoolean()) {
                    assertEquals(!model.get(i), bitmap.set(i), "set " + i + " seed " + seed);
                    model.set(i);
                } else {
                    assertEquals(model.get(i), bitmap.clear(i), "clear " + i + " seed " + seed);
                    model.clear(i);
                }
                int from = r.nextInt(size + 1);
                int to = from + r.nextInt(size - from + 1);
                int expectSet = model.nextSetBit(from);
                assertEquals(expectSet < 0 || expectSet >= to ? to : expectSet, bitmap.nextSet(from, to), "seed " + seed);
                int expectClear = model.nextClearBit(from);
                assertEquals(Math.min(expectClear, to), bitmap.nextClear(from, to), "seed " + seed);
                assertEquals(model.get(from, to).cardinality(), bitmap.count(from, to), "seed " + seed);
            }
            assertEquals(model.cardinality(), bitmap.count());
        }
    }

    @Test
    @DisplayName("allSet spans words; indices out of range are refused")
    void allSetAndBounds() {
        ClusterBitmap b = new ClusterBitmap(200);
        for (int i = 60; i < 140; i++) {
            b.set(i);
        }
        assertTrue(b.allSet(60, 140));
        assertFalse(b.allSet(59, 140));
        assertFalse(b.allSet(60, 141));
        assertThrows(IndexOutOfBoundsException.class, () -> b.get(200));
        assertThrows(IndexOutOfBoundsException.class, () -> b.set(-1));
        assertEquals("[60-139] of 200", b.toString());
    }

    @Test
    @DisplayName("loading words refuses bits past the end")
    void loadRefusesBitsPastEnd() {
        ClusterBitmap b = new ClusterBitmap(70);
        long[] words = {0, 1L << 6};
        assertThrows(IllegalArgumentException.class, () -> b.loadWords(0, words, 0, 2));
        long[] ok = {-1L, (1L << 6) - 1};
        b.loadWords(0, ok, 0, 2);
        assertEquals(70, b.count());
    }
}
