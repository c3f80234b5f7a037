<?php
/**
 * panelkit — the provisioner's HTTP client for the WHMCS server module and its hooks.
 *
 * One request per call, over PHP's curl (bundled with every WHMCS install), with the API token from the
 * server entry's Access Hash as a bearer token. TLS is verified unless the server entry says otherwise
 * (see panelkit_tls_options). Every call is written to WHMCS's module log through logModuleCall, with
 * the server password, the access hash, the service password and password-like custom fields given as
 * its replace-vars argument, so WHMCS scrubs them (developer docs, provisioning-modules/module-logging.md:
 * "passing data strings such as usernames and passwords into the $replaceVars parameter").
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

if (!class_exists('PanelkitModuleError')) {
    /**
     * A failure with a customer-safe message (what a module function returns to WHMCS) and an operator
     * detail (what goes to the module log only).
     */
    class PanelkitModuleError extends \Exception
    {
        /** @var string */
        public $detail;
        /** @var string */
        public $errorCode;

        public function __construct($message, $detail = '', $errorCode = 'PANELKIT_ERR_MODULE')
        {
            parent::__construct($message);
            $this->detail = $detail === '' ? $message : $detail;
            $this->errorCode = $errorCode;
        }
    }
}

if (!function_exists('panelkit_secret_values')) {
    /** The values WHMCS must scrub from the module log entry of this call. */
    function panelkit_secret_values(array $params)
    {
        $secrets = array();
        foreach (array('serverpassword', 'serveraccesshash', 'password') as $key) {
            if (isset($params[$key]) && is_string($params[$key]) && $params[$key] !== '') {
                $secrets[] = $params[$key];
            }
        }
        if (isset($params['customfields']) && is_array($params['customfields'])) {
            foreach ($params['customfields'] as $name => $value) {
                if (is_string($value) && $value !== '' && preg_match('/pass|secret|token|key/i', (string) $name)) {
                    $secrets[] = $value;
                }
            }
        }
        return $secrets;
    }

    /**
     * The provisioner's base URL from the server entry: the Hostname may be a host name (with the
     * server's "Secure" flag and port) or a whole URL such as https://provisioner.example.com:8443.
     */
    function panelkit_base_url(array $params)
    {
        $host = isset($params['serverhostname']) ? trim((string) $params['serverhostname']) : '';
        if ($host === '' && isset($params['serverip'])) {
            $host = trim((string) $params['serverip']);
        }
        if ($host === '') {
            throw new PanelkitModuleError(
                'The provisioning server is not configured.',
                'The panelkit server entry has no hostname: set it to the provisioner\'s host name or URL',
                'PANELKIT_ERR_CONFIG'
            );
        }
        if (preg_match('#^https?://#i', $host)) {
            $parts = parse_url($host);
            if ($parts === false || empty($parts['host'])) {
                throw new PanelkitModuleError(
                    'The provisioning server is not configured.',
                    'The panelkit server entry\'s hostname is not a valid URL',
                    'PANELKIT_ERR_CONFIG'
                );
            }
            return rtrim($host, '/');
        }
        if (!preg_match('/^[A-Za-z0-9.\-\[\]:]+$/', $host)) {
            throw new PanelkitModuleError(
                'The provisioning server is not configured.',
                'The panelkit server entry\'s hostname holds characters a host name cannot have',
                'PANELKIT_ERR_CONFIG'
            );
        }
        $secure = isset($params['serversecure'])
            && $params['serversecure'] !== false
            && $params['serversecure'] !== ''
            && $params['serversecure'] !== 'off'
            && $params['serversecure'] !== '0';
        $port = isset($params['serverport']) ? (int) $params['serverport'] : 0;
        return ($secure ? 'https' : 'http') . '://' . $host . ($port > 0 ? ':' . $port : '');
    }

    /** The API token: the server entry's Access Hash (the Password field as a fallback). */
    function panelkit_token(array $params)
    {
        $token = isset($params['serveraccesshash']) ? trim((string) $params['serveraccesshash']) : '';
        if ($token === '' && isset($params['serverpassword'])) {
            $token = trim((string) $params['serverpassword']);
        }
        if ($token === '' || preg_match('/\s/', $token)) {
            throw new PanelkitModuleError(
                'The provisioning server is not configured.',
                'The panelkit server entry has no API token: put one of the provisioner\'s http.tokens in its Access Hash',
                'PANELKIT_ERR_CONFIG'
            );
        }
        return $token;
    }

    /**
     * TLS options from the server entry's Username field: empty verifies against the system's CA list;
     * "ca=/path/to/ca.pem" verifies against that CA (a private CA); "insecure" turns verification off.
     */
    function panelkit_tls_options(array $params)
    {
        $raw = isset($params['serverusername']) ? trim((string) $params['serverusername']) : '';
        $options = array(CURLOPT_SSL_VERIFYPEER => true, CURLOPT_SSL_VERIFYHOST => 2);
        if ($raw === '') {
            return $options;
        }
        foreach (preg_split('/[;,]\s*/', $raw) as $item) {
            if ($item === 'insecure') {
                $options[CURLOPT_SSL_VERIFYPEER] = false;
                $options[CURLOPT_SSL_VERIFYHOST] = 0;
            } elseif (strncmp($item, 'ca=', 3) === 0) {
                $path = substr($item, 3);
                if (!is_file($path) || !is_readable($path)) {
                    throw new PanelkitModuleError(
                        'The provisioning server is not configured.',
                        'The CA file named in the panelkit server entry\'s Username (ca=…) cannot be read',
                        'PANELKIT_ERR_CONFIG'
                    );
                }
                $options[CURLOPT_CAINFO] = $path;
            } elseif ($item !== '') {
                throw new PanelkitModuleError(
                    'The provisioning server is not configured.',
                    'The panelkit server entry\'s Username holds an unknown TLS option (use ca=/path/to/ca.pem or insecure)',
                    'PANELKIT_ERR_CONFIG'
                );
            }
        }
        return $options;
    }

    /**
     * One call to the provisioner. Returns the decoded JSON body of a 2xx answer; throws
     * PanelkitModuleError otherwise. Logged once through logModuleCall, secrets scrubbed.
     *
     * @param array $params the module parameters (server fields and the service's secrets)
     * @param string $method GET or POST
     * @param string $path e.g. /v1/module/services/12/create
     * @param array|null $body JSON body
     * @param string $action the name shown in WHMCS's module log
     * @param int $timeout seconds for the whole request
     */
    function panelkit_call(array $params, $method, $path, $body, $action, $timeout = 30)
    {
        $secrets = panelkit_secret_values($params);
        $url = '';
        $raw = '';
        $decoded = null;
        $error = null;
        try {
            $url = panelkit_base_url($params) . $path;
            $token = panelkit_token($params);
            $tls = panelkit_tls_options($params);
            if (!function_exists('curl_init')) {
                throw new PanelkitModuleError(
                    'The provisioning server cannot be reached.',
                    'PHP\'s curl extension is not loaded on this WHMCS server',
                    'PANELKIT_ERR_CONFIG'
                );
            }
            $ch = curl_init($url);
            $headers = array('Authorization: Bearer ' . $token, 'Accept: application/json');
            $options = array(
                CURLOPT_RETURNTRANSFER => true,
                CURLOPT_CUSTOMREQUEST => $method,
                CURLOPT_CONNECTTIMEOUT => 5,
                CURLOPT_TIMEOUT => max(5, (int) $timeout),
                CURLOPT_FOLLOWLOCATION => false,
                CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            ) + $tls;
            if ($body !== null) {
                $headers[] = 'Content-Type: application/json';
                $options[CURLOPT_POSTFIELDS] = json_encode($body);
            }
            $options[CURLOPT_HTTPHEADER] = $headers;
            curl_setopt_array($ch, $options);
            $raw = curl_exec($ch);
            $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
            if ($raw === false) {
                $errno = curl_errno($ch);
                $text = curl_error($ch);
                curl_close($ch);
                $raw = '';
                if ($errno === 28 && $body !== null) {
                    // Sent, then no answer in time: the provisioner may still be doing it. Say so rather
                    // than "nothing was changed".
                    throw new PanelkitModuleError(
                        'The provisioning service did not answer in time. The work may still finish: check the service\'s panelkit fields before trying again.',
                        'No answer from the provisioner within ' . (int) $timeout . ' s (curl 28: ' . $text . ')',
                        'PANELKIT_ERR_TIMEOUT'
                    );
                }
                throw new PanelkitModuleError(
                    'The provisioning service could not be reached; nothing was changed. Please try again later.',
                    'Could not reach the provisioner at ' . panelkit_base_url($params) . ' (curl ' . $errno . ': ' . $text . ')',
                    'PANELKIT_ERR_CONNECTION'
                );
            }
            curl_close($ch);
            $decoded = json_decode($raw, true);
            if (!is_array($decoded)) {
                throw new PanelkitModuleError(
                    'The provisioning service gave an unexpected answer; nothing was changed.',
                    'The provisioner answered HTTP ' . $status . ' with a body that is not JSON (is the hostname the provisioner\'s?)',
                    'PANELKIT_ERR_PROTOCOL'
                );
            }
            if ($status < 200 || $status >= 300) {
                $e = isset($decoded['error']) && is_array($decoded['error']) ? $decoded['error'] : array();
                $code = isset($e['code']) ? (string) $e['code'] : 'PANELKIT_ERR_HTTP_' . $status;
                if ($status === 401) {
                    throw new PanelkitModuleError(
                        'The provisioning service refused this WHMCS server\'s credentials.',
                        'HTTP 401 ' . $code . ': the Access Hash of the panelkit server entry is not one of the provisioner\'s http.tokens',
                        $code
                    );
                }
                $message = isset($e['message']) && is_string($e['message']) && $e['message'] !== ''
                    ? $e['message']
                    : 'The provisioning service could not do this.';
                $detail = isset($e['detail']) && is_string($e['detail']) ? $e['detail'] : $message;
                throw new PanelkitModuleError($message, 'HTTP ' . $status . ' ' . $code . ': ' . $detail, $code);
            }
        } catch (PanelkitModuleError $e) {
            $error = $e;
        } catch (\Throwable $e) {
            $error = new PanelkitModuleError(
                'The provisioning service failed unexpectedly; see the module log.',
                get_class($e) . ': ' . $e->getMessage(),
                'PANELKIT_ERR_MODULE'
            );
        }
        if (function_exists('logModuleCall')) {
            logModuleCall(
                'panelkit',
                $action,
                array('method' => $method, 'url' => $url, 'body' => $body),
                $raw,
                $error === null ? $decoded : array('error' => $error->errorCode, 'detail' => $error->detail),
                $secrets
            );
        }
        if ($error !== null) {
            throw $error;
        }
        return $decoded;
    }
}
