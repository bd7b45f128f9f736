using System.Net;
using System.Threading.RateLimiting;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace Mesh.Coordinator.Hosting;

/// <summary>
/// How often one source address may ask for a challenge, register, or call the admin API: token buckets per
/// address (ASP.NET Core's rate limiter), so a flood from one place costs it refusals (RESOURCE_EXHAUSTED) and
/// leaves everyone else's joins alone. Sync streams are not limited here: each must prove its key within seconds.
/// </summary>
public sealed record SourceRateLimits
{
    /// <summary>Registrations per second per source, with a burst of ten seconds' worth; challenges get ten times as many.</summary>
    public double RegistrationsPerSecond { get; init; } = 5;

    private static readonly PathString Challenge = "/" + Protos.V1.Coordinator.Descriptor.FullName + "/GetChallenge";
    private static readonly PathString Register = "/" + Protos.V1.Coordinator.Descriptor.FullName + "/Register";
    private static readonly PathString Admin = "/" + Protos.V1.Admin.Descriptor.FullName;

    public void Configure(RateLimiterOptions limiter)
    {
        limiter.OnRejected = (rejected, _) => new ValueTask(GrpcStatusResponse.WriteAsync(rejected.HttpContext, StatusCode.ResourceExhausted,
            "Too many requests from this address; wait a moment and try again."));
        limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, (int Kind, IPAddress Source)>(context =>
        {
            var path = context.Request.Path;
            var kind = path == Challenge ? 0 : path == Register ? 1 : path.StartsWithSegments(Admin) ? 2 : -1;
            if (kind < 0) return RateLimitPartition.GetNoLimiter((-1, IPAddress.None));
            var source = context.Connection.RemoteIpAddress ?? IPAddress.None;
            if (source.IsIPv4MappedToIPv6) source = source.MapToIPv4();
            var perSecond = kind == 0 ? RegistrationsPerSecond * 10 : RegistrationsPerSecond;
            // A token every tenth of a second (several when the rate is higher), or one per 1/rate seconds below 10/s.
            var (tokens, period) = perSecond >= 10 ? ((int)(perSecond / 10), TimeSpan.FromMilliseconds(100)) : (1, TimeSpan.FromSeconds(1 / perSecond));
            return RateLimitPartition.GetTokenBucketLimiter((kind, source), _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = (int)Math.Max(1, perSecond * 10),
                TokensPerPeriod = tokens,
                ReplenishmentPeriod = period,
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        });
    }
}
