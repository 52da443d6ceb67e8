package io.connguard.core.config;

/**
 * The {@code match} of a rule: every pattern given must match; an absent one matches anything.
 * {@code address} is a glob on the IP address text or a CIDR block ({@code 10.0.0.0/8}).
 */
public record Match(Pattern user, Pattern database, Pattern application, Pattern address, Pattern listener) {

    public boolean matches(String listenerName, String user, String database, String application, String address) {
        return (this.listener == null || this.listener.matches(listenerName))
                && (this.user == null || this.user.matches(user))
                && (this.database == null || this.database.matches(database))
                && (this.application == null || this.application.matches(application))
                && (this.address == null || this.address.matches(address));
    }

    /** A compiled pattern that remembers its source text. */
    public interface Pattern {
        boolean matches(String value);

        String source();
    }
}
