package io.connguard.core.testing;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionLog;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;

/**
 * A {@link SessionContext} that hands every call to a {@link RecordingSessionContext}: the base of the test
 * contexts that play core around a protocol session, each overriding only the calls it plays differently.
 */
public abstract class ForwardingSessionContext implements SessionContext {

    /** What the session reported and sent, as far as the subclass passes it on. */
    public final RecordingSessionContext recording;

    protected ForwardingSessionContext(RecordingSessionContext recording) {
        this.recording = recording;
    }

    @Override
    public long id() {
        return recording.id();
    }

    @Override
    public ListenerInfo listener() {
        return recording.listener();
    }

    @Override
    public InetSocketAddress clientAddress() {
        return recording.clientAddress();
    }

    @Override
    public ByteBufAllocator alloc() {
        return recording.alloc();
    }

    @Override
    public EventLoop eventLoop() {
        return recording.eventLoop();
    }

    @Override
    public SessionLog log() {
        return recording.log();
    }

    @Override
    public void identified(ClientIdentity identity) {
        recording.identified(identity);
    }

    @Override
    public void stateChanged(SessionState state) {
        recording.stateChanged(state);
    }

    @Override
    public void lostSync(String reason) {
        recording.lostSync(reason);
    }

    @Override
    public void violation(String reason) {
        recording.violation(reason);
    }

    @Override
    public void upstreamFailed(String reason) {
        recording.upstreamFailed(reason);
    }

    @Override
    public void toClient(ByteBuf bytes) {
        recording.toClient(bytes);
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        recording.toUpstream(bytes);
    }

    @Override
    public Future<Channel> startUpstreamTls() {
        return recording.startUpstreamTls();
    }

    @Override
    public Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        return recording.startClientTls(alreadyRead);
    }

    @Override
    public void clientTlsRefused(ClientIdentity identity, String request) {
        recording.clientTlsRefused(identity, request);
    }

    @Override
    public void plaintextRefused(ClientIdentity identity) {
        recording.plaintextRefused(identity);
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        return recording.connectAside(target, handler);
    }

    @Override
    public boolean openUpstreamEarly() {
        return recording.openUpstreamEarly();
    }

    @Override
    public void requestSlot() {
        recording.requestSlot();
    }

    @Override
    public void passwordProven() {
        recording.passwordProven();
    }

    @Override
    public void passwordGiven(char[] password) {
        recording.passwordGiven(password);
    }

    @Override
    public void close() {
        recording.close();
    }
}
