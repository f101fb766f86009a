"""Replay timing against a fake clock: rate scaling, loops, start offset, /clock values."""
import pytest

from qwen_voice_ros.replay.bags import BagMessage
from qwen_voice_ros.replay.player import Player

T0 = 1700000000 * 10**9


class FakeClock:
    """Wall time that only moves when the player sleeps."""

    def __init__(self, start=100.0):
        self.now = start
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def bag(offsets_s, topic='/transcript'):
    return [BagMessage(topic, 'std_msgs/msg/String', T0 + int(round(o * 1e9)), b'%d' % i)
            for i, o in enumerate(offsets_s)]


def play(messages, **kwargs):
    clock = FakeClock()
    player = Player(messages, now=clock.time, sleep=clock.sleep, **kwargs)
    sent = []
    ticks = []
    player.run(lambda m: sent.append((round(clock.now - 100.0, 6), m.data)),
               on_clock=lambda ns: ticks.append((round(clock.now - 100.0, 6), ns)))
    return player, sent, ticks, clock


def test_rate_one_keeps_recorded_gaps():
    _, sent, _, _ = play(bag([0.0, 0.5, 0.75, 2.0]))
    assert sent == [(0.0, b'0'), (0.5, b'1'), (0.75, b'2'), (2.0, b'3')]


@pytest.mark.parametrize('rate', [2.0, 0.5, 4.0])
def test_rate_scales_gaps(rate):
    offsets = [0.0, 0.5, 0.75, 2.0]
    _, sent, _, _ = play(bag(offsets), rate=rate)
    assert [t for t, _ in sent] == pytest.approx([o / rate for o in offsets], abs=1e-6)


def test_unsorted_input_is_played_in_time_order():
    messages = bag([0.0, 0.2, 0.4])
    _, sent, _, _ = play([messages[2], messages[0], messages[1]])
    assert [d for _, d in sent] == [b'0', b'1', b'2']


def test_loops_repeat_with_period_span_plus_gap():
    player, sent, _, _ = play(bag([0.0, 1.0]), loops=3, loop_gap_s=0.5)
    assert sent == [(0.0, b'0'), (1.0, b'1'), (1.5, b'0'), (2.5, b'1'), (3.0, b'0'),
                    (4.0, b'1')]
    assert player.duration_s() == pytest.approx(4.0)


def test_endless_loop_runs_until_stopped():
    clock = FakeClock()
    player = Player(bag([0.0, 0.1]), loop=True, rate=2.0, now=clock.time, sleep=clock.sleep)
    sent = []

    def publish(msg):
        sent.append(clock.now - 100.0)
        if len(sent) == 7:
            player.stop()

    assert player.duration_s() is None
    player.run(publish)
    # Gap 0.1 s at rate 2 = 0.05 s; with no loop gap the next loop starts as the last
    # message goes out (like `ros2 bag play --loop`).
    assert sent == pytest.approx([0.0, 0.05, 0.05, 0.1, 0.1, 0.15, 0.15], abs=1e-6)
    assert player.published == 7


def test_single_message_loop_gets_a_one_second_period():
    clock = FakeClock()
    player = Player(bag([0.0]), loops=3, now=clock.time, sleep=clock.sleep)
    sent = []
    player.run(lambda m: sent.append(clock.now - 100.0))
    assert sent == pytest.approx([0.0, 1.0, 2.0])


def test_start_offset_skips_early_messages_and_shifts_timing():
    _, sent, _, _ = play(bag([0.0, 0.5, 1.0, 1.5]), start_offset_s=0.6)
    assert sent == [(0.4, b'2'), (0.9, b'3')]


def test_sim_clock_follows_bag_time_and_never_goes_back():
    player, sent, ticks, _ = play(bag([0.0, 0.25, 1.0]), rate=2.0, clock_hz=10.0, loops=2)
    values = [ns for _, ns in ticks]
    assert values == sorted(values)
    assert values[0] == T0
    # Every tick maps wall time to bag time at the playback rate.
    for wall, ns in ticks:
        assert ns == T0 + int(round(wall * 2.0 * 1e9))
    # 10 Hz in wall time: consecutive ticks at most 0.1 s apart (a tick also precedes
    # every message).
    walls = [w for w, _ in ticks]
    assert max(b - a for a, b in zip(walls, walls[1:])) <= 0.1 + 1e-9
    # The second loop's messages are stamped past the first loop's end on /clock.
    assert player.sim_time_ns() > T0 + 10**9


def test_idle_keeps_clock_ticking_for_the_tail():
    clock = FakeClock()
    player = Player(bag([0.0, 0.5]), clock_hz=20.0, now=clock.time, sleep=clock.sleep)
    player.run(lambda m: None)
    ticks = []
    player.idle(1.0, on_clock=ticks.append)
    assert clock.now - 100.0 == pytest.approx(1.5)
    assert len(ticks) >= 20
    assert ticks[-1] >= T0 + int(1.45e9)


def test_sleeps_are_short_so_stop_is_prompt():
    _, _, _, clock = play(bag([0.0, 3.0]))
    assert max(clock.sleeps) <= 0.05 + 1e-9


def test_empty_bag_and_bad_arguments():
    player, sent, _, _ = play([])
    assert sent == [] and player.duration_s() == 0.0
    with pytest.raises(ValueError):
        Player(bag([0.0]), rate=0)
    with pytest.raises(ValueError):
        Player(bag([0.0]), clock_hz=-1)
    with pytest.raises(ValueError):
        Player(bag([0.0]), loops=0)
