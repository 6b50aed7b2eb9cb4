package corfs.nativetests;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A private nginx serving a directory on 127.0.0.1 (plain HTTP, or HTTPS from a certificate and key),
 * started through {@link LocalServers} so it is stopped even when a test fails. No system config is
 * read: the config, pid, logs and temp paths live under the given prefix.
 */
final class Nginx {
    private Nginx() {
    }

    static boolean installed() {
        return LocalServers.have("nginx");
    }

    /**
     * Starts nginx on {@code port} serving {@code www}; with {@code certAndKey} (PEM paths) it speaks TLS.
     * {@code extra} goes inside the server block (locations).
     */
    static LocalServers.Server start(LocalServers servers, String name, Path prefixParent, Path www, int port,
                                     Path[] certAndKey, String extra) throws IOException, InterruptedException {
        Path prefix = Files.createDirectories(prefixParent.resolve(name));
        Files.createDirectories(prefix.resolve("tmp"));
        String listen = "listen 127.0.0.1:" + port + (certAndKey == null ? ";" : " ssl;\n ssl_certificate "
                + certAndKey[0] + ";\n ssl_certificate_key " + certAndKey[1] + ";");
        String conf = "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + prefix.resolve("nginx.pid") + ";\n"
                + "error_log " + prefix.resolve("error.log") + " info;\nevents { worker_connections 256; }\nhttp {\n"
                + " access_log off;\n types { }\n default_type application/octet-stream;\n"
                + " client_body_temp_path " + prefix.resolve("tmp/body") + ";\n proxy_temp_path " + prefix.resolve("tmp/proxy")
                + ";\n fastcgi_temp_path " + prefix.resolve("tmp/fcgi") + ";\n uwsgi_temp_path " + prefix.resolve("tmp/uwsgi")
                + ";\n scgi_temp_path " + prefix.resolve("tmp/scgi") + ";\n"
                + " server {\n " + listen + "\n root " + www + ";\n" + extra + " }\n}\n";
        Path confFile = prefix.resolve("nginx.conf");
        Files.writeString(confFile, conf);
        String binary = Files.isExecutable(Path.of("/usr/sbin/nginx")) ? "/usr/sbin/nginx" : "nginx";
        return servers.start(name, List.of(binary, "-c", confFile.toString(), "-p", prefix.toString()), prefix, port,
                Duration.ofSeconds(20));
    }
}
