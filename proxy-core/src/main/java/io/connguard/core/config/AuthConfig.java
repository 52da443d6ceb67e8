package io.connguard.core.config;

import java.nio.file.Path;

/**
 * A listener's {@code auth}: how clients are verified when server connections are shared.
 *
 * @param usersFile user/password pairs in PgBouncer's {@code userlist.txt} form, re-read on change;
 *                  null when the database verifies every password itself ({@code passthrough} alone)
 */
public record AuthConfig(Mode mode, Path usersFile) {

    public static final AuthConfig DEFAULTS = new AuthConfig(Mode.PASSTHROUGH, null);

    /** {@code auth.mode}. */
    public enum Mode {
        /** The client's password is asked on the local leg and verified by the database itself. */
        PASSTHROUGH
    }
}
