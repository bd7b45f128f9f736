using System.Buffers.Binary;
using System.Net;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Tun;

namespace Mesh.WireGuard.Tests;

/// <summary>
/// The TUN offloads' packet surgery: super-packets split into segments that verify, segments coalesced back
/// into the super-packet they came from, and what must never merge written as it came.
/// </summary>
public sealed class OffloadTests
{
    private const byte Ack = 0x10;
    private const byte Psh = 0x08;

    [Fact]
    public void TheChecksumMatchesRfc1071ByteByByteForEveryLength()
    {
        var random = new Random(7);
        for (var length = 0; length < 200; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.Equal(ReferenceSum(data), InternetChecksum.Fold(InternetChecksum.Add(0, data)));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATsoSuperPacketSplitsIntoSegmentsThatVerify(bool ipv6)
    {
        var payload = Payload(10_000);
        var super = Tcp(ipv6, 1000, Ack | Psh, payload, id: 40);
        var batch = new PacketBatch();

        Assert.True(Segmentation.Split(TsoHeader(ipv6, 1400), super, batch));

        Assert.Equal(8, batch.Count);
        var joined = new List<byte>();
        for (var i = 0; i < batch.Count; i++)
        {
            var segment = batch[i].ToArray();
            var ip = ipv6 ? 40 : 20;
            Assert.True(TransportVerifies(segment, ipv6), $"segment {i} checksum");
            if (!ipv6)
            {
                Assert.Equal(segment.Length, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(2)));
                Assert.Equal(40 + i, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(4)));
                Assert.Equal(0xffff, ReferenceSum(segment.AsSpan(0, 20)));
            }
            else
            {
                Assert.Equal(segment.Length - 40, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(4)));
            }
            Assert.Equal(1000u + (uint)(i * 1400), BinaryPrimitives.ReadUInt32BigEndian(segment.AsSpan(ip + 4)));
            Assert.Equal(i == batch.Count - 1 ? Ack | Psh : Ack, segment[ip + 13]);
            joined.AddRange(segment.AsSpan(ip + 20).ToArray());
        }
        Assert.Equal(payload, joined.ToArray());
    }

    [Fact]
    public void AUsoSuperPacketSplitsIntoDatagramsThatVerify()
    {
        var payload = Payload(2500);
        var super = Udp(payload);
        var batch = new PacketBatch();

        Assert.True(Segmentation.Split(new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, VirtioNetHeader.GsoUdpL4, 28, 1000, 20, 6), super, batch));

        Assert.Equal([1028, 1028, 528], Enumerable.Range(0, batch.Count).Select(i => batch[i].Length));
        for (var i = 0; i < batch.Count; i++)
        {
            var datagram = batch[i].ToArray();
            Assert.Equal(datagram.Length - 20, BinaryPrimitives.ReadUInt16BigEndian(datagram.AsSpan(24)));
            Assert.Equal(0xffff, ReferenceSum(datagram.AsSpan(0, 20)));
            Assert.Equal(0xffff, ReferenceTransportSum(datagram, ipv6: false, protocol: 17));
            Assert.Equal(payload.AsSpan(i * 1000, datagram.Length - 28).ToArray(), datagram.AsSpan(28).ToArray());
        }
    }

    [Fact]
    public void AChecksumTheKernelLeftPartialIsFinished()
    {
        var packet = Tcp(ipv6: false, 5, Ack, Payload(333));
        var expected = packet.ToArray();
        var pseudo = InternetChecksum.PseudoHeader(packet.AsSpan(12, 4), packet.AsSpan(16, 4), 6, packet.Length - 20);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(36), InternetChecksum.Fold(pseudo));
        var batch = new PacketBatch();

        Assert.True(Segmentation.Split(new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, VirtioNetHeader.GsoNone, 0, 0, 20, 16), packet, batch));

        Assert.Equal(expected, batch[0].ToArray());
    }

    [Theory]
    [InlineData(60_000, 20, 16)]
    [InlineData(20, 20, 60_000)]
    [InlineData(10, 20, 16)]
    public void AHeaderThatDoesNotFitThePacketAddsNothing(int checksumStart, int headerLength, int checksumOffset)
    {
        var packet = Tcp(ipv6: false, 5, Ack, Payload(3000));
        var batch = new PacketBatch();
        var gso = new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, VirtioNetHeader.GsoTcpV4, (ushort)headerLength, 1400, (ushort)checksumStart, (ushort)checksumOffset);
        var plain = gso with { GsoType = VirtioNetHeader.GsoNone };

        Assert.False(Segmentation.Split(checksumStart == 10 ? gso : plain, packet, batch));
        Assert.Equal(0, batch.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SegmentsOfTwoInterleavedFlowsCoalesceBackIntoTheirSuperPackets(bool ipv6)
    {
        var first = Split(Tcp(ipv6, 1000, Ack | Psh, Payload(10_000), id: 40), ipv6);
        var second = Split(Tcp(ipv6, 77, Ack | Psh, Payload(5000), id: 9, sourcePort: 4444), ipv6);
        var coalescing = new Coalescing();
        for (var i = 0; i < Math.Max(first.Count, second.Count); i++)
        {
            if (i < first.Count) Assert.True(coalescing.Add(first[i]));
            if (i < second.Count) Assert.True(coalescing.Add(second[i]));
        }
        var frames = new Frames();

        coalescing.Flush(frames);

        Assert.Equal(2, frames.Count);
        foreach (var (frame, segments) in new[] { (frames[0], first), (frames[1], second) })
        {
            var header = VirtioNetHeader.Read(frame);
            Assert.Equal(ipv6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, header.GsoType);
            Assert.Equal(1400, header.GsoSize);
            var again = new PacketBatch();
            Assert.True(Segmentation.Split(header, frame.AsSpan(VirtioNetHeader.Size), again));
            Assert.Equal(segments, Enumerable.Range(0, again.Count).Select(i => again[i].ToArray()));
        }
    }

    [Fact]
    public void WhatMustNotMergeIsWrittenAsItCameInItsFlowsOrder()
    {
        var segments = Split(Tcp(ipv6: false, 1000, Ack, Payload(7000), id: 1), ipv6: false);
        var corrupt = segments[2].ToArray();
        corrupt[^1] ^= 0xff;
        var otherAck = segments[4].ToArray();
        otherAck[28] ^= 1;
        BinaryPrimitives.WriteUInt16BigEndian(otherAck.AsSpan(36), 0);
        BinaryPrimitives.WriteUInt16BigEndian(otherAck.AsSpan(36), Segmentation.TransportChecksum(otherAck, true, 20, 6));
        var coalescing = new Coalescing();
        foreach (var packet in new[] { segments[0], segments[1], corrupt, segments[3], otherAck }) Assert.True(coalescing.Add(packet));
        var frames = new Frames();

        coalescing.Flush(frames);

        Assert.Equal(4, frames.Count);
        Assert.Equal(VirtioNetHeader.GsoTcpV4, VirtioNetHeader.Read(frames[0]).GsoType);
        Assert.Equal(segments[0].Length + segments[1].Length - 40, frames[0].Length - VirtioNetHeader.Size);
        Assert.Equal(corrupt, Unframed(frames[1]));
        Assert.Equal(segments[3], Unframed(frames[2]));
        Assert.Equal(otherAck, Unframed(frames[3]));
    }

    [Fact]
    public void ABatchOfDatagramsArrivesWholeAndInOrder()
    {
        using var sender = UdpBinding.Bind(0);
        using var first = UdpBinding.Bind(0, coalesceReceives: true);
        using var second = UdpBinding.Bind(0, coalesceReceives: true);
        var toFirst = new NetEndpoint(IPAddress.Loopback, first.Port);
        var toSecond = new NetEndpoint(IPAddress.IPv6Loopback, second.Port);
        var expectedFirst = new List<byte[]>();
        var expectedSecond = new List<byte[]>();
        var batch = new SendBatch();
        for (var i = 0; i < 60; i++)
        {
            var datagram = Payload(i < 40 ? 1200 : i < 43 ? 500 : 900, seed: i);
            var toSecondOne = i >= 50;
            Assert.True(batch.Add(datagram, toSecondOne ? toSecond : toFirst, sender.Segmentation));
            (toSecondOne ? expectedSecond : expectedFirst).Add(datagram);
        }

        sender.Send(batch);

        Assert.Equal(0, batch.Count);
        Assert.Equal(expectedFirst, ReceiveAll(first, expectedFirst.Count, sender.Port));
        Assert.Equal(expectedSecond, ReceiveAll(second, expectedSecond.Count, sender.Port));
    }

    private static List<byte[]> ReceiveAll(UdpBinding binding, int count, int fromPort)
    {
        var received = new List<byte[]>();
        var batch = new ReceiveBatch();
        while (received.Count < count && binding.Receive(batch, 2000) > 0)
        {
            for (var i = 0; i < batch.Count; i++)
            {
                Assert.Equal(fromPort, batch.Source(i).Port);
                received.Add(batch.Datagram(i).ToArray());
            }
        }
        return received;
    }

    private sealed class Frames : List<byte[]>, IFrameWriter
    {
        public void Write(ReadOnlySpan<byte> frame) => Add(frame.ToArray());
    }

    private static byte[] Unframed(byte[] frame)
    {
        Assert.Equal(new byte[VirtioNetHeader.Size], frame[..VirtioNetHeader.Size]);
        return frame[VirtioNetHeader.Size..];
    }

    private static List<byte[]> Split(byte[] super, bool ipv6)
    {
        var batch = new PacketBatch();
        Assert.True(Segmentation.Split(TsoHeader(ipv6, 1400), super, batch));
        return Enumerable.Range(0, batch.Count).Select(i => batch[i].ToArray()).ToList();
    }

    private static VirtioNetHeader TsoHeader(bool ipv6, ushort segmentSize) =>
        new(VirtioNetHeader.NeedsChecksum, ipv6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, (ushort)((ipv6 ? 40 : 20) + 20), segmentSize, (ushort)(ipv6 ? 40 : 20), 16);

    private static byte[] Payload(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A TCP segment (no options) with a valid checksum; IPv4 with DF, as Linux sends them.</summary>
    private static byte[] Tcp(bool ipv6, uint sequence, int flags, byte[] payload, ushort id = 0, ushort sourcePort = 5201)
    {
        var ip = ipv6 ? 40 : 20;
        var packet = new byte[ip + 20 + payload.Length];
        WriteIp(packet, ipv6, 6, id);
        var tcp = packet.AsSpan(ip);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 40000);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 0x01020304);
        tcp[12] = 5 << 4;
        tcp[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 512);
        payload.CopyTo(tcp[20..]);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], (ushort)~ReferenceTransportSum(packet, ipv6, 6));
        return packet;
    }

    private static byte[] Udp(byte[] payload)
    {
        var packet = new byte[28 + payload.Length];
        WriteIp(packet, ipv6: false, 17, 3);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 53);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), 9999);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), (ushort)(8 + payload.Length));
        payload.CopyTo(packet.AsSpan(28));
        return packet;
    }

    private static void WriteIp(byte[] packet, bool ipv6, byte protocol, ushort id)
    {
        if (ipv6)
        {
            packet[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
            packet[6] = protocol;
            packet[7] = 64;
            IPAddress.Parse("fd00::1").TryWriteBytes(packet.AsSpan(8, 16), out _);
            IPAddress.Parse("fd00::2").TryWriteBytes(packet.AsSpan(24, 16), out _);
            return;
        }
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), id);
        packet[6] = 0x40;
        packet[8] = 64;
        packet[9] = protocol;
        new byte[] { 10, 96, 0, 1, 10, 96, 0, 2 }.CopyTo(packet, 12);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), (ushort)~ReferenceSum(packet.AsSpan(0, 20)));
    }

    private static bool TransportVerifies(byte[] packet, bool ipv6) => ReferenceTransportSum(packet, ipv6, 6) == 0xffff;

    private static ushort ReferenceTransportSum(byte[] packet, bool ipv6, byte protocol)
    {
        var ip = ipv6 ? 40 : 20;
        var pseudo = new List<byte>();
        pseudo.AddRange(ipv6 ? packet[8..40] : packet[12..20]);
        pseudo.AddRange([0, protocol, (byte)((packet.Length - ip) >> 8), (byte)(packet.Length - ip)]);
        pseudo.AddRange(packet[ip..]);
        return ReferenceSum(pseudo.ToArray());
    }

    /// <summary>RFC 1071 as written: big-endian 16-bit words, carries folded, not complemented.</summary>
    private static ushort ReferenceSum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i < data.Length; i += 2) sum += (uint)(data[i] << 8 | (i + 1 < data.Length ? data[i + 1] : 0));
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }
}
