using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Cli;

internal static class ConsoleLogging
{
    /// <summary>One line per event; the framework speaks only of problems, and a failed start is reported once, by the CLI.</summary>
    public static void Configure(ILoggingBuilder logging, LogLevel level)
    {
        logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss ";
        });
        logging.SetMinimumLevel(level);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
    }
}
