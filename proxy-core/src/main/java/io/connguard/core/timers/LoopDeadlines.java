package io.connguard.core.timers;

import io.netty.channel.EventLoop;
import io.netty.util.concurrent.FastThreadLocal;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The pending checks of every {@link SessionTimers} of one event loop, in one min-heap of their deadlines
 * run by one task scheduled on the loop for the earliest.
 *
 * <p>Why not a task per session: Netty's scheduled task and the two lambdas around it cost ~100 bytes per
 * idle session (an idle client keeps its leak check pending for minutes), and were made anew every time a
 * check moved earlier. Here a session's place in the heap is an index in its timers and a slot in one
 * array, and moving a deadline allocates nothing. A check that moves later is left where it is (the
 * session timers re-arm when it fires), so most state changes do not touch the heap at all; the loop's task
 * is rescheduled only when a deadline comes earlier than every other pending one. Used on its loop only.
 */
public final class LoopDeadlines implements SessionTimers.Scheduler, Runnable {

    private static final FastThreadLocal<LoopDeadlines> OF_THIS_LOOP = new FastThreadLocal<>();
    private static final int INITIAL = 16;
    private static final long NEVER = Long.MAX_VALUE;

    private final EventLoop loop;
    private final LongSupplier clock;
    private SessionTimers[] heap = new SessionTimers[INITIAL];
    private int size;
    private ScheduledFuture<?> task;
    private long taskAt = NEVER;

    LoopDeadlines(EventLoop loop, LongSupplier clock) {
        this.loop = loop;
        this.clock = clock;
    }

    /** The deadlines of {@code loop}, shared by its sessions; call on that loop. */
    public static LoopDeadlines of(EventLoop loop) {
        if (!loop.inEventLoop()) {
            return new LoopDeadlines(loop, System::nanoTime); // not shared, still correct: used on its loop
        }
        LoopDeadlines deadlines = OF_THIS_LOOP.getIfExists();
        if (deadlines == null || deadlines.loop != loop) {
            deadlines = new LoopDeadlines(loop, System::nanoTime);
            OF_THIS_LOOP.set(deadlines);
        }
        return deadlines;
    }

    /** Pending checks; for tests and views. */
    int pending() {
        return size;
    }

    @Override
    public void schedule(SessionTimers timers, long deadline) {
        int at = timers.heapIndex;
        if (at < 0) {
            if (size == heap.length) {
                heap = Arrays.copyOf(heap, size * 2);
            }
            at = size++;
            heap[at] = timers;
            timers.heapIndex = at;
        }
        // The timers only ever move their check earlier (SessionTimers#arm): it can only rise.
        siftUp(at, timers);
        if (deadline < taskAt) {
            scheduleTask(deadline);
        }
    }

    @Override
    public void cancel(SessionTimers timers) {
        int at = timers.heapIndex;
        if (at < 0) {
            return;
        }
        timers.heapIndex = -1;
        SessionTimers last = heap[--size];
        heap[size] = null;
        if (at != size) {
            heap[at] = last;
            last.heapIndex = at;
            siftDown(at, last);
            if (last.heapIndex == at) {
                siftUp(at, last);
            }
        }
        if (size < heap.length / 4 && heap.length > INITIAL) {
            heap = Arrays.copyOf(heap, Math.max(INITIAL, heap.length / 2));
        }
        // The loop's task is left as it is: when it comes early, it finds nothing due and moves on.
    }

    /** The loop's task: fires what is due, then waits for the next deadline. */
    @Override
    public void run() {
        task = null;
        taskAt = Long.MIN_VALUE; // while firing, a re-armed check does not schedule the task: done once below
        long now = clock.getAsLong();
        // At most the checks pending now: one that re-arms for a deadline already past runs on the next turn.
        for (int n = size; n > 0 && size > 0 && heap[0].scheduledAt() <= now; n--) {
            SessionTimers due = heap[0];
            cancel(due);
            due.fire(now);
        }
        taskAt = NEVER;
        if (size > 0) {
            scheduleTask(heap[0].scheduledAt());
        }
    }

    private void scheduleTask(long deadline) {
        if (task != null) {
            task.cancel(false);
        }
        taskAt = deadline;
        task = loop.schedule(this, Math.max(0, deadline - clock.getAsLong()), TimeUnit.NANOSECONDS);
    }

    private void siftUp(int at, SessionTimers timers) {
        long deadline = timers.scheduledAt();
        while (at > 0) {
            int parent = (at - 1) >>> 1;
            SessionTimers above = heap[parent];
            if (above.scheduledAt() <= deadline) {
                break;
            }
            heap[at] = above;
            above.heapIndex = at;
            at = parent;
        }
        heap[at] = timers;
        timers.heapIndex = at;
    }

    private void siftDown(int at, SessionTimers timers) {
        long deadline = timers.scheduledAt();
        int half = size >>> 1;
        while (at < half) {
            int child = 2 * at + 1;
            int right = child + 1;
            if (right < size && heap[right].scheduledAt() < heap[child].scheduledAt()) {
                child = right;
            }
            SessionTimers below = heap[child];
            if (deadline <= below.scheduledAt()) {
                break;
            }
            heap[at] = below;
            below.heapIndex = at;
            at = child;
        }
        heap[at] = timers;
        timers.heapIndex = at;
    }
}
