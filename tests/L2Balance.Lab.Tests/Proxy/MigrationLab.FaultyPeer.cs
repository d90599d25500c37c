using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using L2Balance.Tests.Common;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>How the test's peer fails a move (issue 19, docs/design.md#failure-paths-of-a-move).</summary>
public enum FaultyPeer
{
    /// <summary>Refuses the first state (Ready with a reason), then closes the channel after a few more states.</summary>
    RefuseThenBreak,

    /// <summary>Reads every state and never answers (a peer that hangs): the old node's answer timeout decides.</summary>
    Silent,
}

internal sealed partial class MigrationLab
{
    /// <summary>The test's peer on B's own address: <c>move NodeB:PORT</c> with this port reaches <see cref="ServeFaultyPeerAsync"/>.</summary>
    public const int FaultyPeerPort = ChannelPort;

    /// <summary>Serves one channel from A's l2proxy as a failing peer would; returns the number of states it read.</summary>
    public async Task<int> ServeFaultyPeerAsync(FaultyPeer behaviour, int breakAfter)
    {
        using var socket = await _channelListener.AcceptAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        using var channel = await MigrationChannel.OpenAsync(socket, _channelKey, initiator: false, CancellationToken.None).WithTimeout(Step);
        int states = 0;
        try
        {
            while (true)
            {
                // A closes the channel once it has resumed its sessions (at most its 5 s answer timeout after the last state).
                var bytes = await channel.ReceiveAsync(CancellationToken.None).WithTimeout(TimeSpan.FromSeconds(20));
                if (MigrationMessages.TryParse(bytes, out var prepare) == ParseStatus.Ok && prepare.Type == MigrationMessageType.Prepare)
                {
                    // The batch's Prepare comes before its states (docs/design.md#the-pause): this peer does not capture.
                    await channel.SendAsync(MigrationMessages.Prepared(prepare.Session, capturing: false), CancellationToken.None).WithTimeout(Step);
                    continue;
                }
                if (MigrationMessages.TryParse(bytes, out var message) != ParseStatus.Ok || message.Type != MigrationMessageType.State)
                {
                    throw new LabCommandException($"the peer got {message.Type} for session {message.Session}, not a state");
                }
                states++;
                if (behaviour == FaultyPeer.RefuseThenBreak && states == 1)
                {
                    await channel.SendAsync(MigrationMessages.Ready(message.Session, MigrationRefusal.RestoreFailed), CancellationToken.None).WithTimeout(Step);
                }
                else if (behaviour == FaultyPeer.RefuseThenBreak && states == breakAfter)
                {
                    return states;
                }
            }
        }
        catch (MigrationException)
        {
            // A closed the channel: every state read.
            return states;
        }
    }
}
