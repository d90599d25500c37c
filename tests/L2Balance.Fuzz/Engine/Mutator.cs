using System.Buffers.Binary;
using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace L2Balance.Fuzz.Engine;

/// <summary>
/// Makes input number n of a target: a generated valid-shaped message, or a seed changed by one to
/// eight mutations (bit flips, interesting values, length fields at their edges, truncation,
/// extension, deletion, duplication, splicing with another seed, dictionary tokens), as AFL and
/// libFuzzer do. Everything comes from a <see cref="FuzzRandom"/>, so an input is reproducible.
/// </summary>
public static class Mutator
{
    /// <summary>Byte values at the edges of fields: lengths 0/1/255, sign bits, separators.</summary>
    private static readonly byte[] InterestingBytes = [0, 1, 2, 3, 4, 5, 0x0a, 0x0d, 0x20, 0x23, 0x2f, 0x3a, 0x3d, 0x7b, 0x7d, 0x7e, 0x7f, 0x80, 0xc0, 0xfe, 0xff];

    private static readonly ushort[] InterestingShorts = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x7fff, 0x8000, 0xfffe, 0xffff];

    /// <summary>Pieces every text parser should survive: numbers at integer edges, non-ASCII, NUL, lone halves of UTF-8.</summary>
    private static readonly byte[][] InterestingText =
    [
        .. new[]
        {
            "0", "-1", "1", "65535", "65536", "2147483647", "2147483648", "4294967295", "4294967296",
            "99999999999999999999999", "0x", "0xffffffff", "1e9", "NaN", "-0", "..", "/", "/0", "/33", "::", ":::",
            "255.255.255.255", "0.0.0.0", "::ffff:1.2.3.4", "[::1]", "%eth0", "\u00e9", "\u2028", "\u0000", "\t", " ", "\r\n", "\n\n", "#",
        }.Select(Encoding.UTF8.GetBytes),
        [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff], [0xe2, 0x82],
    ];

    /// <summary>Input <paramref name="index"/> of <paramref name="target"/> in run <paramref name="seed"/>.</summary>
    public static byte[] Make(FuzzTarget target, ulong seed, long index, out FuzzRandom random, out bool generated)
    {
        random = new FuzzRandom(FuzzRandom.StartOf(seed, target.Name, index));
        generated = target.Generator is not null && random.Percent(30);
        byte[] input;
        if (generated)
        {
            input = Gen.Sample(target.Generator!, random.Next(1, 60), new Rnd(random.NextUInt64()), 1)[0];
            if (random.Percent(30))
            {
                input = Mutate(input, target, ref random);
            }
        }
        else
        {
            input = Mutate(random.Pick(target.Seeds), target, ref random);
        }

        input = target.Finish(input, ref random);
        return input.Length > target.MaxInputLength ? input[..target.MaxInputLength] : input;
    }

    /// <summary>One to eight mutations of a copy of <paramref name="seed"/>.</summary>
    public static byte[] Mutate(byte[] seed, FuzzTarget target, ref FuzzRandom random)
    {
        var data = new List<byte>(seed);
        int rounds = 1 + (random.Percent(50) ? 0 : random.Next(1, 8));
        for (int i = 0; i < rounds; i++)
        {
            MutateOnce(data, target, ref random);
            if (data.Count > target.MaxInputLength)
            {
                data.RemoveRange(target.MaxInputLength, data.Count - target.MaxInputLength);
            }
        }

        return [.. data];
    }

    private static void MutateOnce(List<byte> data, FuzzTarget target, ref FuzzRandom random)
    {
        int at = data.Count == 0 ? 0 : random.Next(data.Count);
        switch (random.Next(14))
        {
            case 0 when data.Count > 0:
                data[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when data.Count > 0:
                data[at] = random.NextByte();
                break;
            case 2 when data.Count > 0:
                data[at] = random.Pick(InterestingBytes);
                break;
            case 3 when data.Count > 1:
                Span<byte> two = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16BigEndian(two, random.Pick(InterestingShorts));
                at = Math.Min(at, data.Count - 2);
                data[at] = two[0];
                data[at + 1] = two[1];
                break;
            case 4 when data.Count > 0:
                // A length byte that is off by a little from what follows it.
                data[at] = (byte)(data.Count - at - 1 + random.Next(-2, 3));
                break;
            case 5 when data.Count > 0:
                data[at] = (byte)(data[at] + random.Next(-16, 17));
                break;
            case 6:
                data.RemoveRange(at, data.Count - at);
                break;
            case 7:
                data.InsertRange(at, RandomBytes(random.Next(1, 65), ref random));
                break;
            case 8:
                // A run longer than any one-byte length: 255-byte limits and unterminated fields.
                data.InsertRange(at, Enumerable.Repeat(random.Percent(50) ? random.NextByte() : (byte)'a', random.Next(1, 300)));
                break;
            case 9 when data.Count > 0:
                data.RemoveRange(at, random.Next(1, data.Count - at + 1));
                break;
            case 10 when data.Count > 0:
                byte[] chunk = [.. data.Skip(at).Take(random.Next(1, 33))];
                data.InsertRange(random.Next(data.Count + 1), chunk);
                break;
            case 11:
                byte[] other = random.Pick(target.Seeds);
                int cut = other.Length == 0 ? 0 : random.Next(other.Length);
                data.RemoveRange(at, data.Count - at);
                data.AddRange(other.AsSpan(cut).ToArray());
                break;
            case 12 when target.Tokens.Count > 0:
                data.InsertRange(at, random.Pick(target.Tokens));
                break;
            case 13:
                data.InsertRange(at, random.Pick(InterestingText));
                break;
            default:
                data.Insert(at, random.NextByte());
                break;
        }
    }

    private static byte[] RandomBytes(int count, ref FuzzRandom random)
    {
        var bytes = new byte[count];
        for (int i = 0; i < count; i++)
        {
            bytes[i] = random.NextByte();
        }

        return bytes;
    }
}
