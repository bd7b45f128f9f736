using System.Globalization;

namespace Mesh.Coordinator.Cli;

/// <summary>Durations as people write them: 90s, 15m, 12h, 30d, or combinations like 1h30m.</summary>
public static class Durations
{
    public static bool TryParse(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var number = 0L;
        var digits = 0;
        foreach (var c in text.Trim())
        {
            if (char.IsAsciiDigit(c))
            {
                number = checked(number * 10 + (c - '0'));
                digits++;
                continue;
            }
            if (digits == 0) return false;
            TimeSpan unit;
            switch (c)
            {
                case 's': unit = TimeSpan.FromSeconds(1); break;
                case 'm': unit = TimeSpan.FromMinutes(1); break;
                case 'h': unit = TimeSpan.FromHours(1); break;
                case 'd': unit = TimeSpan.FromDays(1); break;
                default: return false;
            }
            duration += unit * number;
            number = 0;
            digits = 0;
        }
        return digits == 0 && duration > TimeSpan.Zero;
    }

    public static string Format(TimeSpan duration) => duration.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture) + "s";
}
