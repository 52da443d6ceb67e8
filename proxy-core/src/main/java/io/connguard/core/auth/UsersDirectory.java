package io.connguard.core.auth;

import io.connguard.core.lifecycle.ConfigWatcher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.util.Map;

/**
 * The users of {@code auth.usersFile}, re-read when the file's content changes (a mounted Secret is
 * updated by swapping a symlink, so the content is polled, as for the configuration file). A file that
 * no longer reads keeps the last good content and is logged; passwords are never logged.
 */
public final class UsersDirectory implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(UsersDirectory.class);

    private final Path file;
    private final ConfigWatcher watcher;
    private volatile Map<String, String> users;

    /** Reads the file now (it was validated with the configuration) and watches it. */
    public UsersDirectory(Path file) throws UsersFile.Invalid {
        this.file = file;
        this.users = UsersFile.read(file);
        this.watcher = new ConfigWatcher(file, "users file", this::reread);
        watcher.start();
    }

    void reread() {
        try {
            users = UsersFile.read(file);
            LOG.atInfo().log("users file {} re-read: {} user(s)", file, users.size());
        } catch (UsersFile.Invalid e) {
            LOG.atWarn().log("users file {} changed but is not valid, keeping the previous users: {}", file,
                    e.getMessage());
        }
    }

    /** The user's password, or null when the file does not list the user. */
    public String password(String user) {
        return users.get(user);
    }

    @Override
    public void close() {
        watcher.close();
    }
}
