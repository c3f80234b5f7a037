export {
  type HttpPanel,
  type HttpPanelOptions,
  httpPanelConnector,
  type PanelAccount,
  type PanelIpPool,
  startHttpPanel,
} from './http-panel.ts'
