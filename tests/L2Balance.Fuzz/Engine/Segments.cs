using System.Buffers;

namespace L2Balance.Fuzz.Engine;

/// <summary>Bytes as a sequence of one to four segments split at random points, as a socket delivers them.</summary>
public static class Segments
{
    public static ReadOnlySequence<byte> Split(byte[] bytes, ref FuzzRandom random)
    {
        int parts = random.Percent(50) ? 1 : random.Next(2, 5);
        if (parts == 1 || bytes.Length < 2)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var cuts = new SortedSet<int>();
        for (int i = 1; i < parts; i++)
        {
            cuts.Add(random.Next(1, bytes.Length));
        }

        Segment first = new(bytes.AsMemory(0, cuts.Min), 0);
        Segment last = first;
        int from = cuts.Min;
        foreach (int cut in cuts.Skip(1).Append(bytes.Length))
        {
            last = last.Append(bytes.AsMemory(from, cut - from));
            from = cut;
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
