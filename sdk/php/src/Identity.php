<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * Who the worker is: the DISTARCH_* environment variables, parsed (docs/protocol.md §2).
 */
final class Identity
{
    public const PROTOCOL_VERSION = 1;

    /**
     * @param array<string, mixed> $params the params, objects as arrays
     */
    private function __construct(
        public readonly int $protocol,
        public readonly string $runId,
        public readonly int $id,
        public readonly string $group,
        public readonly int $groupId,
        public readonly int $groupCount,
        public readonly string $host,
        public readonly int $restart,
        public readonly array $params,
        public readonly \stdClass $rawParams,
    ) {
    }

    /**
     * Reads every variable; DISTARCH_ID first, so that a script started by hand is
     * told "not started by distarch".
     *
     * @param array<string, string> $env the variables (getenv() when null)
     *
     * @throws WorkerException naming the variable that is missing or malformed
     */
    public static function fromEnv(?array $env = null): self
    {
        $env ??= getenv();
        $required = static function (string $name) use ($env): string {
            if (!isset($env[$name])) {
                throw new WorkerException("not started by distarch: {$name} is not set");
            }
            return (string) $env[$name];
        };
        $id = self::number('DISTARCH_ID', $required('DISTARCH_ID'), 1);
        $protocol = self::number('DISTARCH_PROTOCOL', $required('DISTARCH_PROTOCOL'), 0);
        if ($protocol !== self::PROTOCOL_VERSION) {
            throw new WorkerException(sprintf(
                'DISTARCH_PROTOCOL: unsupported protocol version %d (this worker speaks version %d)',
                $protocol,
                self::PROTOCOL_VERSION,
            ));
        }
        $runId = $required('DISTARCH_RUN_ID');
        $group = $required('DISTARCH_GROUP');
        $groupId = self::number('DISTARCH_GROUP_ID', $required('DISTARCH_GROUP_ID'), 1);
        $groupCount = self::number('DISTARCH_GROUP_COUNT', $required('DISTARCH_GROUP_COUNT'), 1);
        $host = $required('DISTARCH_HOST');
        $restart = self::number('DISTARCH_RESTART', $required('DISTARCH_RESTART'), 0);
        [$params, $raw] = self::params($required('DISTARCH_PARAMS'));
        return new self($protocol, $runId, $id, $group, $groupId, $groupCount, $host, $restart, $params, $raw);
    }

    private static function number(string $name, string $value, int $minimum): int
    {
        $text = trim($value);
        if (preg_match('/\A[0-9]+\z/', $text) !== 1 || strlen($text) > 18) {
            throw new WorkerException("{$name} has an invalid value `{$value}`: not a number");
        }
        $number = (int) $text;
        if ($number < $minimum) {
            throw new WorkerException("{$name} has an invalid value `{$value}`: must be at least {$minimum}");
        }
        return $number;
    }

    /**
     * @return array{0: array<string, mixed>, 1: \stdClass}
     */
    private static function params(string $value): array
    {
        // An empty value is an empty object: a shell may not be able to pass `{}` easily.
        if (trim($value) === '') {
            return [[], new \stdClass()];
        }
        try {
            $raw = json_decode($value, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WorkerException("DISTARCH_PARAMS has an invalid value: {$e->getMessage()}");
        }
        if (!$raw instanceof \stdClass) {
            throw new WorkerException('DISTARCH_PARAMS has an invalid value: not a JSON object');
        }
        /** @var array<string, mixed> $params */
        $params = json_decode($value, true, 512, JSON_THROW_ON_ERROR);
        return [$params, $raw];
    }
}
