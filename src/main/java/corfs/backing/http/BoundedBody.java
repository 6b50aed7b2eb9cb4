package corfs.backing.http;

import java.net.http.HttpResponse.BodySubscriber;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * A response body kept only up to a bound: the first {@code limit} bytes, then the subscription is
 * cancelled (which closes an HTTP/1.1 connection) and the body completes with what it has. Used for
 * probes, error bodies and metadata answers, so a hostile or confused server (a 200 with the whole image)
 * never makes corfs download or buffer more than the bound. Driven by the HTTP client's threads, one
 * signal at a time (reactive-streams rules).
 */
public final class BoundedBody implements BodySubscriber<byte[]> {
    private final int limit;
    private final CompletableFuture<byte[]> body = new CompletableFuture<>();
    private byte[] bytes = new byte[0];
    private Flow.Subscription subscription;

    public BoundedBody(int limit) {
        this.limit = limit;
    }

    @Override
    public CompletionStage<byte[]> getBody() {
        return body;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
        subscription = s;
        if (limit == 0) {
            body.complete(bytes); // before the cancel: the exchange then ends with this body, not an error
            s.cancel();
        } else {
            s.request(1);
        }
    }

    @Override
    public void onNext(List<ByteBuffer> items) {
        for (ByteBuffer b : items) {
            int n = Math.min(b.remaining(), limit - bytes.length);
            int old = bytes.length;
            bytes = Arrays.copyOf(bytes, old + n);
            b.get(bytes, old, n);
            if (bytes.length >= limit) {
                body.complete(bytes);
                subscription.cancel();
                return;
            }
        }
        subscription.request(1);
    }

    @Override
    public void onError(Throwable t) {
        body.completeExceptionally(t);
    }

    @Override
    public void onComplete() {
        body.complete(bytes);
    }
}
